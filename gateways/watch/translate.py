"""A watch's message in anxin's MQTT contract, and the reply it is owed. Pure.

:func:`translate` says what to publish (topic kind + JSON payload, in order) and what to
answer the watch, and when: at once, once the broker has PUBACKed the publications, or (an
SOS) only once anxin's Ack ``received`` for it came back, i.e. the alert is stored.
docs/watch-gateway.md has the table.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from devices.topics import Uplink
from gateways.watch.frames import Frame
from gateways.watch.messages import (
    Alarm,
    Health,
    History,
    Link,
    Other,
    Position,
    PositionRecord,
    StatusBit,
    Voice,
    WatchMessage,
    classify,
)

# The event type of an alarm anxin has no name for: an AL with no bit set (TK-905 watches
# send it for a shock), an AL with only fence bits, bit 22. Not an SOS; a person checks it.
DEVICE_ALARM = "device_alarm"

_STATUS_NAMES = {
    StatusBit.LOW_BATTERY_STATE: "low_battery_state",
    StatusBit.OUT_OF_FENCE_STATE: "out_of_fence",
    StatusBit.IN_FENCE_STATE: "in_fence",
    StatusBit.WEAR_STATE: "wear_state",
    StatusBit.NOT_MOVING_STATE: "not_moving",
    StatusBit.POWER_CUT: "power_cut",
    StatusBit.SOS: "sos",
    StatusBit.LOW_BATTERY: "low_battery",
    StatusBit.FENCE_EXIT: "fence_exit",
    StatusBit.FENCE_ENTER: "fence_enter",
    StatusBit.REMOVED: "removed",
    StatusBit.FALL: "fall",
    StatusBit.HEART_RATE: "abnormal_heart_rate",
}
# Alarm bits → contract event types; the SOS bit is the sos topic, not an event.
_EVENT_BITS = {
    StatusBit.FALL: "fall",
    StatusBit.LOW_BATTERY: "low_battery",
    StatusBit.REMOVED: "removed",
}


class ReplyWhen(StrEnum):
    NOW = "now"  # nothing to publish first
    PUBACK = "puback"  # once every publication of the frame was PUBACKed
    STORED = "stored"  # once the SOS's Ack `received` reached the gateway


@dataclass(frozen=True, kw_only=True, slots=True)
class Fix:
    """The last current GPS fix a watch reported (the shell remembers it per watch)."""

    lat: float
    lon: float
    at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Publication:
    kind: Uplink
    payload: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Translation:
    publications: tuple[Publication, ...] = ()
    reply: str | None = None  # the content of the reply frame, None: no reply
    reply_when: ReplyWhen = ReplyWhen.NOW
    # The SOS publication's seq, when there is one (the Ack to wait for carries it).
    sos_seq: int | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)


def translate(frame: Frame, message: WatchMessage, last_fix: Fix | None = None) -> Translation:
    """What ``message`` (read from ``frame``) becomes. ``last_fix``: the watch's last current
    fix, given to an alarm without one as ``last_known_location`` (never as ``location``)."""
    kind = classify(frame)
    if isinstance(message, Link):
        beat: dict[str, Any] = {}
        if message.battery is not None:
            beat["battery"] = message.battery
        if message.steps is not None:
            beat["steps"] = message.steps
        return _after_puback(Publication(kind=Uplink.HEARTBEAT, payload=beat), reply="LK")
    if isinstance(message, Alarm):
        return _alarm(frame, message.record, last_fix)
    if isinstance(message, Position):
        return _position(frame, message.record)
    if isinstance(message, History):
        return _history(message.record)
    if isinstance(message, Health):
        return _health(kind, message)
    if isinstance(message, Voice):
        if message.chunked:
            return Translation(reply="JXTKR,1")
        # TK,1 / TK,0 are the watch's answer to a voice message sent to it; else it is one.
        rest = frame.content[len(frame.type) + 1 :].strip()
        return Translation(reply=None if rest in {b"1", b"0"} else f"{frame.type},1")
    return Translation(reply=_REPLIES.get(kind) if isinstance(message, Other) else None)


# What the vendor document says to answer (TKQ / TKQ2 echoed, INIT and CONFIG confirmed).
_REPLIES = {"TKQ": "TKQ", "TKQ2": "TKQ2", "INIT": "INIT,1", "CONFIG": "CONFIG,1"}


def unreadable_alarm(frame: Frame) -> Translation:
    """An AL the reader failed on (a bug): still an alarm a person checks, answered once safe."""
    payload = {"type": DEVICE_ALARM, "value": "unreadable", "seq": zlib.crc32(frame.content)}
    return Translation(
        publications=(Publication(kind=Uplink.EVENT, payload=payload),),
        reply="AL",
        reply_when=ReplyWhen.PUBACK,
    )


def alarm_seq(frame: Frame, record: PositionRecord) -> int:
    """A stable seq for an alarm: the watch repeats the same AL (same time) until answered,
    and each repeat must count once. The frame's time in epoch seconds; without a readable
    time, a checksum of the content (a repeat is byte for byte the same then)."""
    if record.time is not None:
        return int(record.time.timestamp())
    return zlib.crc32(frame.content)


def fix_of(record: PositionRecord) -> Fix | None:
    """The record's current fix, if it has one (and a time)."""
    location = record.location
    if location is None or record.time is None:
        return None
    return Fix(lat=location[0], lon=location[1], at=record.time)


def _alarm(frame: Frame, record: PositionRecord, last_fix: Fix | None = None) -> Translation:
    bits = record.bits
    seq = alarm_seq(frame, record)
    base = _record_fields(record)
    base["seq"] = seq
    if "location" not in base and last_fix is not None:
        # No fix now (V): where the watch last knew it was, and when, for the dispatcher.
        base["last_known_location"] = {
            "lat": last_fix.lat,
            "lon": last_fix.lon,
            "at": last_fix.at.isoformat().replace("+00:00", "Z"),
        }
    publications: list[Publication] = []
    if StatusBit.SOS in bits:
        sos = dict(base)
        sos["trigger"] = "watch"
        publications.append(Publication(kind=Uplink.SOS, payload=sos))
    events = [event for bit, event in _EVENT_BITS.items() if bit in bits]
    if StatusBit.LOW_BATTERY_STATE in bits and "low_battery" not in events:
        events.append("low_battery")
    for event in events:
        publications.append(Publication(kind=Uplink.EVENT, payload={**base, "type": event}))
    if not publications:
        # No bit anxin has a name for: an alarm of unknown kind, which a person checks.
        unknown = {**base, "type": DEVICE_ALARM, "value": _hex(record.status)}
        publications.append(Publication(kind=Uplink.EVENT, payload=unknown))
    sos_first = StatusBit.SOS in bits
    return Translation(
        publications=tuple(publications),
        reply="AL",
        reply_when=ReplyWhen.STORED if sos_first else ReplyWhen.PUBACK,
        sos_seq=seq if sos_first else None,
    )


def _position(frame: Frame, record: PositionRecord) -> Translation:
    """A live position: a heartbeat with the position and state; alarm bits in it count as
    they would in an AL (every bit is looked at), but the watch expects no reply."""
    publications = [Publication(kind=Uplink.HEARTBEAT, payload=_record_fields(record))]
    bits = record.bits
    if bits & {StatusBit.SOS, *_EVENT_BITS}:
        alarm = _alarm(frame, record)
        publications += list(alarm.publications)
    return Translation(publications=tuple(publications), reply=None, reply_when=ReplyWhen.NOW)


def _history(record: PositionRecord) -> Translation:
    """UD2, positions from while the watch was offline: telemetry marked as history, so it is
    stored with its own time and never read as a live alarm (no event, no sos, no battery
    field for the battery rule)."""
    metrics: dict[str, float] = {}
    location = record.location
    if location is not None:
        metrics["latitude"], metrics["longitude"] = location
    if record.battery is not None:
        metrics["battery_pct"] = record.battery
    if record.steps is not None:
        metrics["steps"] = record.steps
    payload: dict[str, Any] = {"metrics": metrics, "history": True}
    if record.time is not None:
        payload["ts"] = record.time.isoformat().replace("+00:00", "Z")
    if record.status is not None:
        payload["watch_status"] = _hex(record.status)
    if not metrics:
        return Translation()
    return Translation(publications=(Publication(kind=Uplink.TELEMETRY, payload=payload),))


def _health(kind: str, message: Health) -> Translation:
    metrics = {
        name: value
        for name, value in (
            ("heart_rate", message.heart_rate),
            ("bp_systolic", message.bp_systolic),
            ("bp_diastolic", message.bp_diastolic),
            ("spo2", message.spo2),
            ("body_temperature_c", message.body_temperature_c),
        )
        if value is not None
    }
    reply = {"BPHRT": "bphrt", "BTEMP2": "btemp2"}.get(kind)
    if kind == "OXYGEN":
        reply = f"oxygen,{_oxygen_status(message.spo2)}"
    if not metrics:
        # A 0 is no reading: nothing to store, but still answered.
        return Translation(reply=reply)
    publication = Publication(kind=Uplink.TELEMETRY, payload={"metrics": metrics})
    return Translation(
        publications=(publication,),
        reply=reply,
        reply_when=ReplyWhen.PUBACK if reply else ReplyWhen.NOW,
    )


def _oxygen_status(spo2: float | None) -> int:
    """The vendor's reply code: 1 normal, 0 abnormal, 2 error (no reading)."""
    if spo2 is None or spo2 > 100:
        return 2
    return 1 if spo2 >= 90 else 0


def _after_puback(publication: Publication, *, reply: str) -> Translation:
    return Translation(publications=(publication,), reply=reply, reply_when=ReplyWhen.PUBACK)


def _record_fields(record: PositionRecord) -> dict[str, Any]:
    """The contract fields of a position record (and the watch's own, as extra fields)."""
    fields: dict[str, Any] = {}
    if record.time is not None:
        fields["ts"] = record.time.isoformat().replace("+00:00", "Z")
    if record.battery is not None:
        fields["battery"] = record.battery
    location = record.location
    if location is not None:
        where: dict[str, float] = {"lat": location[0], "lon": location[1]}
        if record.accuracy_m:
            where["accuracy_m"] = record.accuracy_m
        fields["location"] = where
    else:
        fields["fix"] = "none"  # V: no current fix; coordinates, if any, are stale
    if record.steps is not None:
        fields["steps"] = record.steps
    if record.gsm_signal is not None:
        fields["gsm_signal"] = record.gsm_signal
    if record.status is not None:
        fields["watch_status"] = _hex(record.status)
        fields["watch_flags"] = sorted(
            _STATUS_NAMES.get(StatusBit(bit), f"bit{bit}")
            if bit in StatusBit._value2member_map_
            else f"bit{bit}"
            for bit in record.bits
        )
    return fields


def _hex(status: int | None) -> str:
    return "unreadable" if status is None else f"{status:08X}"
