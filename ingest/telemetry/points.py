"""Device messages as InfluxDB points, and points as line protocol (pure, no I/O).

Measurements: ``heartbeat`` (fields ``seen`` = 1, ``battery``, ``rssi``) and ``telemetry``
(each metric, ``battery``, ``rssi``). Tags, sorted by key as InfluxDB advises: ``community``
(the elder's, when the device has one), ``device_id``, ``model``. Numbers are always written as
floats, so that a metric sent once as ``72`` and once as ``72.5`` never makes a field type
conflict; ``seen`` is the one integer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from devices.events import DeviceEvent, Heartbeat, TelemetryReport
from devices.registry import DeviceInfo

HEARTBEAT = "heartbeat"
TELEMETRY = "telemetry"
MEASUREMENTS = (HEARTBEAT, TELEMETRY)
TAG_KEYS = ("community", "device_id", "model")
# Fields anxin writes itself; the others of ``telemetry`` are the devices' metric names.
SEEN = "seen"

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    # Milliseconds since the epoch: the coarsest precision device clocks give (InfluxDB's
    # advice: the coarsest precision that fits), and what the writer sends as precision=ms.
    time_ms: int


def points_of(event: DeviceEvent, device: DeviceInfo | None) -> list[Point]:
    """The points a stored message makes: heartbeats and telemetry of registered devices.

    Retained messages are left out: the broker replays them at every subscription, with a
    receive time that is not when the values were measured.
    """
    if device is None or event.retained:
        return []
    if not isinstance(event, Heartbeat | TelemetryReport):
        return []
    fields: dict[str, FieldValue] = {}
    if isinstance(event, Heartbeat):
        measurement = HEARTBEAT
        fields[SEEN] = 1
    else:
        measurement = TELEMETRY
    if event.battery is not None:
        fields["battery"] = float(event.battery)
    if event.rssi is not None:
        fields["rssi"] = float(event.rssi)
    if isinstance(event, TelemetryReport):
        for name, value in event.metrics.items():
            fields[name] = float(value)
    if not fields:
        return []
    tags = {"device_id": device.device_id, "model": device.model}
    if device.community:
        tags["community"] = device.community
    return [Point(measurement, tags, fields, epoch_ms(event.occurred_at))]


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# What line protocol cannot carry in names and tag values: a newline ends the line, and
# InfluxDB reads a backslash before a separator, or at the end, as an escape it cannot undo
# (1.x answers "invalid tag format" or keeps the backslash). Those become look-alikes; every
# other character (Chinese text, spaces, commas, equals signs, quotes, tabs) is kept exactly.
_UNSAYABLE = {"\\": "＼", "\n": " ", "\r": " "}
# The stand-in space of a line break is escaped like any space.
_MEASUREMENT = str.maketrans({"\\": "＼", ",": r"\,", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})
_KEY = str.maketrans({"\\": "＼", ",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\ ", "\r": r"\ "})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"'})
# Names InfluxDB refuses as a tag or field key.
_REFUSED_KEYS = frozenset({"", "time"})


def sanitized(text: str) -> str:
    """What InfluxDB will hold for ``text`` used as a name or a tag value."""
    for character, stand_in in _UNSAYABLE.items():
        text = text.replace(character, stand_in)
    return text


def usable_key(name: str) -> bool:
    return sanitized(name) not in _REFUSED_KEYS


# Cached: a fleet repeats the same few names and communities in every batch.
@functools.lru_cache(maxsize=65_536)
def _key(text: str) -> str | None:
    """``text`` escaped as a tag or field key; None if InfluxDB refuses it as a key."""
    return text.translate(_KEY) if usable_key(text) else None


@functools.lru_cache(maxsize=65_536)
def _tag_value(text: str) -> str:
    return text.translate(_KEY)


@functools.lru_cache(maxsize=65_536)
def _field_prefix(name: str) -> str | None:
    """``key=`` for a field name, escaped; None if InfluxDB refuses it as a key."""
    key = _key(name)
    return None if key is None else key + "="


def encode_line(point: Point) -> str | None:
    """One line of line protocol, or None when no field is left that InfluxDB would take
    (a non-finite number, a field called ``time`` or with no name)."""
    fields = []
    # One loop, floats (nearly every field) first: this runs for every point written.
    for name, raw in point.fields.items():
        prefix = _field_prefix(name)
        if prefix is None:
            continue
        if type(raw) is float:
            if raw - raw == 0.0:  # finite: inf - inf and nan - nan are nan
                fields.append(prefix + repr(raw))
        elif (value := _field_value(raw)) is not None:
            fields.append(prefix + value)
    if not fields:
        return None
    series = _series(point.measurement, tuple(point.tags.items()))
    return f"{series} {','.join(fields)} {point.time_ms}"


@functools.lru_cache(maxsize=65_536)
def _series(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """The measurement and its tags, sorted by key; cached per device (its tags repeat)."""
    escaped = "".join(
        f",{key}={_tag_value(value)}"
        for name, value in sorted(tags)
        if value and (key := _key(name)) is not None
    )
    return measurement.translate(_MEASUREMENT) + escaped


def _field_value(value: FieldValue) -> str | None:
    if type(value) is float:  # the common case first
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return '"' + value.translate(_STRING) + '"'


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A request body of line protocol and what it holds."""

    body: bytes
    points: int
    oldest_ms: int


def encode_batch(points: Sequence[Point]) -> EncodedBatch | None:
    """The body of one write request; None when no point in it can be written."""
    lines = [line for line in map(encode_line, points) if line is not None]
    if not lines:
        return None
    return EncodedBatch(
        body="\n".join(lines).encode(),
        points=len(lines),
        oldest_ms=min(p.time_ms for p in points),
    )
