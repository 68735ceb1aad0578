"""Typed events: what a device said, after decoding, whatever adapter it came through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


# Not frozen: one or more is made per message, and a frozen dataclass's __init__ costs three
# times as much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class DeviceMessage:
    """Fields common to every uplink event."""

    device_id: str
    received_at: datetime
    occurred_at: datetime
    # Device clock minus server clock in seconds, when the device sent a usable ts.
    clock_skew_s: float | None = None
    seq: int | None = None
    battery: float | None = None
    rssi: float | None = None
    # Unknown extra payload fields, kept as they came.
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # The broker replayed a retained message: old news, not a sign of life now.
    retained: bool = False


@dataclass(kw_only=True, slots=True)
class Heartbeat(DeviceMessage):
    pass


@dataclass(kw_only=True, slots=True)
class SosPressed(DeviceMessage):
    location: Mapping[str, Any] | None = None
    trigger: str | None = None
    # Why the payload could not be read, when it could not: an SOS is never dropped.
    payload_error: str | None = None


@dataclass(kw_only=True, slots=True)
class SensorEvent(DeviceMessage):
    type: str
    restore: bool = False
    zone: str | None = None
    value: float | str | bool | None = None
    contact_id: str | None = None


@dataclass(kw_only=True, slots=True)
class TelemetryReport(DeviceMessage):
    metrics: Mapping[str, float]


@dataclass(kw_only=True, slots=True)
class AvailabilityChanged(DeviceMessage):
    online: bool


@dataclass(kw_only=True, slots=True)
class Rejected:
    """A message that cannot become an event; it goes to the dead-letter store."""

    topic: str
    payload: bytes
    reason: str
    received_at: datetime
    device_id: str | None = None


DeviceEvent = Heartbeat | SosPressed | SensorEvent | TelemetryReport | AvailabilityChanged
Decoded = DeviceEvent | Rejected
