"""Device messages as InfluxDB points, and points as line protocol (pure, no I/O).

Measurements: ``heartbeat`` (fields ``seen`` = 1, ``battery``, ``rssi``) and ``telemetry``
(each metric, ``battery``, ``rssi``). Tags, sorted by key as InfluxDB advises: ``community``
(the elder's, when the device has one), ``device_id``, ``model``. Numbers are always written as
floats, so that a metric sent once as ``72`` and once as ``72.5`` never makes a field type
conflict; ``seen`` is the one integer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from devices.events import DeviceEvent, Heartbeat, TelemetryReport
from devices.registry import DeviceInfo

HEARTBEAT = "heartbeat"
TELEMETRY = "telemetry"
MEASUREMENTS = (HEARTBEAT, TELEMETRY)
TAG_KEYS = ("community", "device_id", "model")
# Fields anxin writes itself; the others of ``telemetry`` are the devices' metric names.
SEEN = "seen"

FieldValue = float | int | bool | str
_K = TypeVar("_K")


# Not frozen: one is made per message, and a frozen dataclass's __init__ costs three times as
# much (object.__setattr__ per field). Nothing changes one once made, nor its tags and fields
# (a device's tags are shared by its points: batch_points).
@dataclass(slots=True)
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
    return batch_points([(event, device)])


def batch_points(messages: Iterable[tuple[DeviceEvent, DeviceInfo | None]]) -> list[Point]:
    """The points of a batch's stored messages (each as ``points_of``), in order. Each
    device's tags are made once a batch, shared by its points."""
    points: list[Point] = []
    shared: dict[str, tuple[DeviceInfo, dict[str, str]]] = {}
    for event, device in messages:
        if device is None or event.retained:
            continue
        fields: dict[str, FieldValue]
        if isinstance(event, Heartbeat):
            measurement, fields, metrics = HEARTBEAT, {SEEN: 1}, None
        elif isinstance(event, TelemetryReport):
            measurement, fields, metrics = TELEMETRY, {}, event.metrics
        else:
            continue
        if event.battery is not None:
            fields["battery"] = float(event.battery)
        if event.rssi is not None:
            fields["rssi"] = float(event.rssi)
        if metrics:
            for name, value in metrics.items():
                fields[name] = float(value)
        if not fields:
            continue
        known = shared.get(device.device_id)
        if known is None or known[0] is not device:
            known = shared[device.device_id] = (device, _tags(device))
        points.append(Point(measurement, known[1], fields, epoch_ms(event.occurred_at)))
    return points


def _tags(device: DeviceInfo) -> dict[str, str]:
    tags = {"device_id": device.device_id, "model": device.model}
    if device.community:
        tags["community"] = device.community
    return tags


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


# The encoder's caches. A fleet repeats the same series, field names and readings in every
# batch, and a dict lookup costs a fraction of escaping or formatting them again (measured:
# docs/operations.md, Throughput). Plain dicts, cheaper to call than lru_cache, each emptied
# when it reaches CACHE_BOUND entries: a fleet that changes over months cannot grow them, and
# they fill again from the next points. Full, the series cache holds some 45 MB (65 536
# series of four-tier Chinese community tags, their strings included); the others far less.
CACHE_BOUND = 65_536
# (measurement, *tag items) -> "measurement,key=value,…", escaped, tags sorted by key.
_series_cache: dict[tuple[object, ...], str] = {}
# Field name -> "name=", escaped; "" for a name InfluxDB refuses as a key.
_prefix_cache: dict[str, str] = {}
# Number -> its text. Kept apart by type: 1, 1.0 and True are equal keys. Only finite non-zero
# floats: 0.0 and -0.0 are equal keys with different reprs, nan is never found again, and
# non-finite numbers are not written.
_float_cache: dict[float, str] = {}
_int_cache: dict[int, str] = {}


def _remember(cache: dict[_K, str], key: _K, text: str) -> str:
    if len(cache) >= CACHE_BOUND:
        cache.clear()
    cache[key] = text
    return text


def _key(text: str) -> str | None:
    """``text`` escaped as a tag or field key; None if InfluxDB refuses it as a key."""
    return text.translate(_KEY) if usable_key(text) else None


def _field_prefix(name: str) -> str:
    """``key=`` for a field name, escaped; "" if InfluxDB refuses it as a key."""
    key = _key(name)
    return _remember(_prefix_cache, name, "" if key is None else key + "=")


def _float_text(value: float) -> str | None:
    if not math.isfinite(value):
        return None
    text = repr(value)
    return _remember(_float_cache, value, text) if value else text


def encode_line(point: Point) -> str | None:
    """One line of line protocol, or None when no field is left that InfluxDB would take
    (a non-finite number, a field called ``time`` or with no name)."""
    fields = []
    # This runs for every point written: the common case (a cached name, a cached float or
    # int) costs three dict lookups; type() rather than isinstance keeps bools out.
    prefixes, floats, ints = _prefix_cache, _float_cache, _int_cache
    for name, value in point.fields.items():
        prefix = prefixes.get(name)
        if prefix is None:
            prefix = _field_prefix(name)
        if not prefix:
            continue
        if type(value) is float:
            text = floats.get(value) or _float_text(value)
        elif type(value) is int:
            text = ints.get(value) or _remember(ints, value, f"{value}i")
        else:
            text = _field_value(value)
        if text is not None:
            fields.append(prefix + text)
    if not fields:
        return None
    tags = point.tags
    series = _series_cache.get((point.measurement, *tags.items())) or _series(
        point.measurement, tags
    )
    return f"{series} {','.join(fields)} {point.time_ms}"


def _series(measurement: str, tags: Mapping[str, str]) -> str:
    """The measurement and its tags, sorted by key, escaped; remembered (a device's tags repeat)."""
    escaped = "".join(
        f",{key}={value.translate(_KEY)}"
        for name, value in sorted(tags.items())
        if value and (key := _key(name)) is not None
    )
    series = measurement.translate(_MEASUREMENT) + escaped
    return _remember(_series_cache, (measurement, *tags.items()), series)


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
    # Its place in the spool's order, reserved when it left the writer's buffer (Spool.reserve);
    # None: behind everything spooled so far.
    place: int | None = None


def encode_batch(points: Sequence[Point], place: int | None = None) -> EncodedBatch | None:
    """The body of one write request; None when no point in it can be written."""
    lines = [line for line in map(encode_line, points) if line is not None]
    if not lines:
        return None
    return EncodedBatch(
        body="\n".join(lines).encode(),
        points=len(lines),
        oldest_ms=min(p.time_ms for p in points),
        place=place,
    )
