"""Traffic files (contract §3): JSON Lines, one MQTT message a line.

``{"time": "<RFC 3339>", "topic", "qos", "retain", "payload": "<UTF-8 text>"}``, or
``"payload_b64"`` instead of ``payload`` for bytes that are not UTF-8. One addition: a line
``{"time": ..., "link": "down" | "up"}`` says the recorder (standing where ingest stands) lost or
regained the broker, so a virtual replay can let the platform's outage guard see the outage.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Literal

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.codec import describe


class TrafficFormatError(ValueError):
    """A line of a traffic file that cannot be read; the message names file and line."""


# Not frozen: one is made per line read, and a frozen dataclass's __init__ costs twice as much
# (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class TrafficMessage:
    time: datetime
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkChange:
    """The listener's link to the broker went down or came back at ``time``."""

    time: datetime
    up: bool


TrafficLine = TrafficMessage | LinkChange


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time: AwareDatetime
    topic: Annotated[str, Field(min_length=1, max_length=65535)] | None = None
    qos: Annotated[int, Field(ge=0, le=2)] = 0
    retain: bool = False
    payload: str | None = None
    payload_b64: str | None = None
    link: Literal["down", "up"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> _Line:
        if self.link is not None:
            if self.topic is not None or self.payload is not None or self.payload_b64 is not None:
                raise ValueError("a link line has no topic or payload")
            return self
        if self.topic is None:
            raise ValueError("topic: required (or link)")
        if (self.payload is None) == (self.payload_b64 is None):
            raise ValueError("exactly one of payload and payload_b64")
        return self


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and a ``Z``: ``2026-03-02T03:10:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_line(item: TrafficLine) -> str:
    if isinstance(item, LinkChange):
        return json.dumps({"time": rfc3339(item.time), "link": "up" if item.up else "down"})
    line: dict[str, object] = {
        "time": rfc3339(item.time),
        "topic": item.topic,
        "qos": item.qos,
        "retain": item.retain,
    }
    try:
        line["payload"] = item.payload.decode("utf-8")
    except UnicodeDecodeError:
        line["payload_b64"] = base64.b64encode(item.payload).decode("ascii")
    return json.dumps(line, ensure_ascii=False)


class _Written(msgspec.Struct, forbid_unknown_fields=True):
    """A message line as encode_line writes it: these fields, these types, no other
    (msgspec is strict: no text for a number, no number for a bool)."""

    time: str
    topic: Annotated[str, msgspec.Meta(min_length=1, max_length=65535)]
    qos: Annotated[int, msgspec.Meta(ge=0, le=2)]
    retain: bool
    payload: str


_WRITTEN = msgspec.json.Decoder(_Written)
# The time as encode_line writes it (UTC, microseconds, "Z"), which fromisoformat and _Line
# read alike (checked here rather than by a msgspec pattern: three times cheaper).
_WRITTEN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def _written_message(text: str) -> TrafficMessage | None:
    """A message line as encode_line writes it, the quick way: read and checked by msgspec
    as _Line checks it (under half the cost; a recorded file is all such lines). Anything
    else (a link line, payload_b64, another time format, a value _Line would coerce or
    refuse) is None: _Line's way, which reads it the same or says what is wrong."""
    try:
        line = _WRITTEN.decode(text)
    except msgspec.DecodeError:  # not such a line (or not JSON)
        return None
    if not _WRITTEN_TIME.fullmatch(line.time):
        return None
    try:
        moment = datetime.fromisoformat(line.time)  # UTC: the "Z"
    except ValueError:  # a day or an hour out of range
        return None
    return TrafficMessage(
        time=moment,
        topic=line.topic,
        payload=line.payload.encode("utf-8"),
        qos=line.qos,
        retain=line.retain,
    )


def decode_line(text: str) -> TrafficLine:
    """One line → its record; raises ValueError with what is wrong."""
    return _written_message(text) or _validated_line(text)


def _validated_line(text: str) -> TrafficLine:
    """Any line, the whole way: _Line's checks and coercions."""
    try:
        line = _Line.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from exc
    if line.link is not None:
        return LinkChange(time=line.time.astimezone(UTC), up=line.link == "up")
    if line.payload is not None:
        payload = line.payload.encode("utf-8")
    else:
        try:
            payload = base64.b64decode(line.payload_b64 or "", validate=True)
        except ValueError as exc:
            raise ValueError(f"payload_b64: not base64 ({exc})") from exc
    return TrafficMessage(
        time=line.time.astimezone(UTC),
        topic=line.topic or "",  # never empty: checked by the model
        payload=payload,
        qos=line.qos,
        retain=line.retain,
    )


def read_traffic(path: Path) -> Iterator[TrafficLine]:
    """The records of a traffic file in file order; blank lines are skipped."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise TrafficFormatError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        number = 0
        try:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    yield decode_line(text)
                except ValueError as exc:
                    raise TrafficFormatError(f"{path}:{number}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise TrafficFormatError(f"{path}:{number + 1}: not UTF-8 ({exc.reason})") from exc


def topics_of(path: Path) -> Iterator[str]:
    """The topics of a traffic file, read cheaply (the lines are checked when replayed)."""
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            if text.strip():
                topic = json.loads(text).get("topic")
                if isinstance(topic, str):
                    yield topic


class TrafficWriter:
    """Appends records, one line each; flushed on ``flush()`` and when closed."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.lines = 0

    def write(self, item: TrafficLine) -> None:
        self._handle.write(encode_line(item) + "\n")
        self.lines += 1

    def flush(self) -> None:
        self._handle.flush()
