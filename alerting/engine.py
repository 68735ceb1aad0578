"""The rules engine: a pure function of (what we know, event, now) → decisions.

It reads no clock, socket or database, so it gives the same answers live, in tests and in
virtual-time replay. The skeleton knows the SOS rule and sightings; issue #4 adds the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerting.decisions import Decision, RaiseAlert, RecordSighting, RejectMessage
from alerting.model import ALERT_KINDS, AlertType
from devices.events import AvailabilityChanged, DeviceEvent, SosPressed
from devices.registry import DeviceInfo, Sighting

UNKNOWN_DEVICE = "unknown device"


class RulesEngine:
    def evaluate(
        self, event: DeviceEvent, device: DeviceInfo | None, now: datetime
    ) -> tuple[Decision, ...]:
        """Decide what ``event`` from ``device`` (None: not registered) means at ``now``."""
        if isinstance(event, SosPressed):
            return self._sos(event, device)
        if device is None:
            return (RejectMessage(reason=UNKNOWN_DEVICE),)
        if isinstance(event, AvailabilityChanged) and (event.retained or not event.online):
            # A last will says the link dropped, and a retained status is replayed by the
            # broker on every subscription: neither is a sign of life.
            return ()
        return (RecordSighting(sighting=_sighting(event)),)

    def _sos(self, event: SosPressed, device: DeviceInfo | None) -> tuple[Decision, ...]:
        # An SOS is never dropped: an unregistered device or an unreadable payload still
        # raises the alarm, marked so the dispatcher knows what they are looking at.
        attributes: dict[str, Any] = dict(event.attributes)
        if event.trigger:
            attributes["trigger"] = event.trigger
        if event.payload_error:
            attributes["payload_error"] = event.payload_error
        if device is None:
            attributes["unregistered_device"] = True
        if event.clock_skew_s is not None:
            attributes["clock_skew_s"] = event.clock_skew_s
        if event.seq is not None:
            attributes["seq"] = event.seq
        kind = ALERT_KINDS[AlertType.SOS]
        alert = RaiseAlert(
            device_id=event.device_id,
            elder_id=device.elder_id if device else None,
            type=AlertType.SOS,
            category=kind.category,
            priority=kind.priority,
            occurred_at=event.occurred_at,
            location=event.location,
            attributes=attributes,
            acknowledge_device=True,
            seq=event.seq,
        )
        if device is None:
            return (alert,)
        return (alert, RecordSighting(sighting=_sighting(event)))


def _sighting(event: DeviceEvent) -> Sighting:
    return Sighting(
        device_id=event.device_id,
        seen_at=event.received_at,
        battery=event.battery,
        online=True,
    )
