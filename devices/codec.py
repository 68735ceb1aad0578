"""The native JSON codec: topic and bytes in, a typed event or a rejection out. No I/O."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import msgspec
from pydantic import ValidationError

from devices.contact_id import SOS, parse_contact_id
from devices.events import (
    AvailabilityChanged,
    Decoded,
    Heartbeat,
    Rejected,
    SensorEvent,
    SosPressed,
    TelemetryReport,
)
from devices.payloads import (
    MAX_PAYLOAD_BYTES,
    EventPayload,
    HeartbeatPayload,
    SosPayload,
    TelemetryPayload,
    Uplink,
)
from devices.storable import storable
from devices.timestamps import event_time, occurrence
from devices.topics import DEFAULT_PREFIX, UplinkTopic, parse_uplink
from devices.topics import Uplink as UplinkKind

EVENT_TYPES = frozenset(
    {
        "fall", "smoke", "gas", "co", "water_leak", "heat", "cold", "door_open", "door_close",
        "motion", "bed_exit", "bed_enter", "tamper", "removed", "low_battery", "power_loss",
        "power_restore", "test", "checkin", "service_request", "cancel", "device_alarm",
    }
)  # fmt: skip


# Some 15 MB full (measured, topics of 15-character device ids).
TOPIC_CACHE_BOUND = 65_536


def describe(error: ValidationError, limit: int = 3) -> str:
    """A short, one-line account of what failed validation."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(loc) for loc in item["loc"]) or "payload"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class NativeCodec:
    """Decodes ``{prefix}/{device_id}/{kind}`` messages of contract §1."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        # A fleet's topics repeat at every message: each parsed once. Only uplink topics are
        # kept, and all are dropped once TOPIC_CACHE_BOUND are (a fleet that changes over
        # months cannot grow it). UplinkTopics are shared: nothing changes one once made.
        self._topics: dict[str, UplinkTopic] = {}

    def decode(
        self, topic: str, payload: bytes, received_at: datetime, retained: bool = False
    ) -> Decoded:
        parsed = self._topics.get(topic) or self._parse_topic(topic)
        if parsed is None:
            return self._reject(topic, payload, "unknown topic", received_at, None)
        device_id, kind = parsed.device_id, parsed.kind
        if kind is UplinkKind.SOS:
            return self._sos(device_id, payload, received_at)
        if len(payload) > MAX_PAYLOAD_BYTES:
            return self._reject(topic, payload, "payload too large", received_at, device_id)
        if kind is UplinkKind.STATUS:
            return self._status(topic, device_id, payload, received_at, retained)
        try:
            if kind is UplinkKind.HEARTBEAT:
                plain = _plain_heartbeat(device_id, payload, received_at)
                if plain is not None:
                    return plain
                beat = HeartbeatPayload.model_validate_json(payload.strip() or b"{}")
                return Heartbeat(**_common(device_id, beat, received_at))
            if kind is UplinkKind.TELEMETRY:
                report = TelemetryPayload.model_validate_json(payload)
                return TelemetryReport(
                    **_common(device_id, report, received_at), metrics=report.metrics
                )
            event = EventPayload.model_validate_json(payload)
        except ValidationError as exc:
            return self._reject(topic, payload, describe(exc), received_at, device_id)
        return self._event(topic, device_id, event, payload, received_at)

    def _parse_topic(self, topic: str) -> UplinkTopic | None:
        parsed = parse_uplink(topic, self.prefix)
        if parsed is not None:
            if len(self._topics) >= TOPIC_CACHE_BOUND:
                self._topics.clear()
            self._topics[topic] = parsed
        return parsed

    def _sos(self, device_id: str, payload: bytes, received_at: datetime) -> SosPressed:
        # An SOS is never dropped: a payload we cannot read still raises the alarm.
        if len(payload) > MAX_PAYLOAD_BYTES:
            return SosPressed(
                device_id=device_id,
                received_at=received_at,
                occurred_at=received_at,
                payload_error="payload too large",
            )
        error = None
        try:
            sos = SosPayload.model_validate_json(payload.strip() or b"{}")
        except ValidationError as exc:
            error = describe(exc)
            # Keep what is readable: a bad battery level must not lose the elder's room.
            sos = _readable_part(payload, exc) or SosPayload()
        location = sos.location.model_dump(exclude_none=True) if sos.location else None
        trigger = sos.trigger.value if sos.trigger else None
        return SosPressed(
            **_common(device_id, sos, received_at),
            location=location,
            trigger=trigger,
            payload_error=error,
        )

    def _event(
        self,
        topic: str,
        device_id: str,
        event: EventPayload,
        payload: bytes,
        received_at: datetime,
    ) -> SensorEvent | SosPressed | Rejected:
        if event.dead_letter is not None:
            return self._reject(topic, payload, event.dead_letter, received_at, device_id)
        common = _common(device_id, event, received_at)
        zone = None if event.zone is None else str(event.zone)
        if event.type is None:
            if event.cid is None:
                reason = "event needs type or cid"
                return self._reject(topic, payload, reason, received_at, device_id)
            cid = parse_contact_id(event.cid)
            if cid is None:
                reason = f"unknown Contact ID code {event.cid}"
                return self._reject(topic, payload, reason, received_at, device_id)
            if cid.type != SOS:
                return SensorEvent(
                    **common, type=cid.type, restore=cid.restore, zone=zone, contact_id=cid.code
                )
            if cid.restore:
                reason = "SOS restore carries no alarm"
                return self._reject(topic, payload, reason, received_at, device_id)
            attributes = {**common.pop("attributes"), "cid": cid.code}
            return SosPressed(**common, attributes=attributes)
        if event.type not in EVENT_TYPES:
            reason = f"unknown event type {event.type!r}"
            return self._reject(topic, payload, reason, received_at, device_id)
        return SensorEvent(
            **common,
            type=event.type,
            restore=event.state == "restore",
            zone=zone,
            value=event.value,
            contact_id=event.cid,
        )

    def _status(
        self, topic: str, device_id: str, payload: bytes, received_at: datetime, retained: bool
    ) -> AvailabilityChanged | Rejected:
        text = payload.strip().lower()
        if text in (b"online", b"offline"):
            return AvailabilityChanged(
                device_id=device_id,
                received_at=received_at,
                occurred_at=received_at,
                online=text == b"online",
                retained=retained,
            )
        return self._reject(
            topic, payload, "status must be online or offline", received_at, device_id
        )

    @staticmethod
    def _reject(
        topic: str, payload: bytes, reason: str, received_at: datetime, device_id: str | None
    ) -> Rejected:
        return Rejected(
            topic=topic,
            payload=payload[:MAX_PAYLOAD_BYTES],
            reason=reason,
            received_at=received_at,
            device_id=device_id,
        )


def _readable_part(payload: bytes, error: ValidationError) -> SosPayload | None:
    """The SOS payload without the fields that failed validation, if that much is valid."""
    try:
        raw = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    bad = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
    try:
        return SosPayload.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return None


# A plain heartbeat, with the bounds HeartbeatPayload puts on its fields. msgspec reads
# integers of any size as ints, as pydantic does (no float stands for one), refuses bools for
# numbers, non-finite numbers and fields of any other name.
_PERCENT = msgspec.Meta(ge=0, le=100)


class _PlainHeartbeat(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    # Text as pydantic keeps it (a str): parse_device_ts reads it, as on pydantic's way.
    ts: int | float | str | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    battery: Annotated[int, _PERCENT] | Annotated[float, _PERCENT] | None = None
    rssi: int | float | None = None


_read_plain_heartbeat = msgspec.json.Decoder(_PlainHeartbeat).decode


def _plain_heartbeat(device_id: str, payload: bytes, received_at: datetime) -> Heartbeat | None:
    """The common heartbeat the quick way: a JSON object of ``ts`` (a number or text),
    numeric ``seq``, ``battery`` and ``rssi`` (any of them), read and checked by msgspec as
    HeartbeatPayload checks them. Anything else (an extra field, a value out of bounds, bytes
    that are not such JSON) is None: pydantic's way, which gives the same event or the reason
    it is refused. Under half the cost, and most of what a fleet sends."""
    try:
        body = _read_plain_heartbeat(payload)
    except msgspec.DecodeError:  # a ValidationError too
        return None
    occurred_at, skew_s = occurrence(body.ts, received_at)
    return Heartbeat(
        device_id=device_id,
        received_at=received_at,
        occurred_at=occurred_at,
        clock_skew_s=skew_s,
        seq=body.seq,
        battery=body.battery,
        rssi=body.rssi,
        attributes={},
    )


def _common(device_id: str, body: Uplink, received_at: datetime) -> dict[str, Any]:
    when = event_time(body.ts, received_at)
    return {
        "device_id": device_id,
        "received_at": received_at,
        "occurred_at": when.occurred_at,
        "clock_skew_s": when.skew_s,
        "seq": body.seq,
        "battery": body.battery,
        "rssi": body.rssi,
        "attributes": storable(body.model_extra) if body.model_extra else {},
    }
