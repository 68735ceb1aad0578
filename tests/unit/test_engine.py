from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.decisions import RaiseAlert, RecordSighting, RejectMessage
from alerting.engine import RulesEngine
from alerting.model import AlertType, Category, Priority
from devices.events import AvailabilityChanged, Heartbeat, SensorEvent, SosPressed
from devices.registry import DeviceInfo, Sighting

NOW = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=2)
PENDANT = DeviceInfo(device_id="p1", model="sos-pendant", elder_id=17)
engine = RulesEngine()


def test_an_sos_raises_a_critical_emergency_and_tells_the_device() -> None:
    sos = SosPressed(
        device_id="p1",
        received_at=NOW,
        occurred_at=EARLIER,
        location={"room": "卧室"},
        trigger="pullcord",
        seq=9,
        clock_skew_s=-2.0,
        battery=40,
    )
    decisions = engine.evaluate(sos, PENDANT, NOW)
    assert decisions == (
        RaiseAlert(
            device_id="p1",
            elder_id=17,
            type=AlertType.SOS,
            category=Category.EMERGENCY,
            priority=Priority.CRITICAL,
            occurred_at=EARLIER,
            location={"room": "卧室"},
            attributes={"trigger": "pullcord", "seq": 9, "clock_skew_s": -2.0},
            acknowledge_device=True,
            seq=9,
        ),
        RecordSighting(sighting=Sighting(device_id="p1", seen_at=NOW, battery=40, online=True)),
    )


def test_an_sos_from_an_unknown_device_is_raised_and_marked() -> None:
    sos = SosPressed(device_id="who", received_at=NOW, occurred_at=NOW, payload_error="bad JSON")
    (decision,) = engine.evaluate(sos, None, NOW)
    assert isinstance(decision, RaiseAlert)
    assert decision.elder_id is None
    assert decision.attributes == {"unregistered_device": True, "payload_error": "bad JSON"}


def test_a_heartbeat_is_a_sighting() -> None:
    beat = Heartbeat(device_id="p1", received_at=NOW, occurred_at=EARLIER, battery=77)
    assert engine.evaluate(beat, PENDANT, NOW) == (
        RecordSighting(sighting=Sighting(device_id="p1", seen_at=NOW, battery=77, online=True)),
    )


def test_anything_but_an_sos_from_an_unknown_device_is_rejected() -> None:
    beat = Heartbeat(device_id="who", received_at=NOW, occurred_at=NOW)
    event = SensorEvent(device_id="who", received_at=NOW, occurred_at=NOW, type="smoke")
    assert engine.evaluate(beat, None, NOW) == (RejectMessage(reason="unknown device"),)
    assert engine.evaluate(event, None, NOW) == (RejectMessage(reason="unknown device"),)


def test_a_last_will_or_a_replayed_status_is_no_sign_of_life() -> None:
    offline = AvailabilityChanged(device_id="p1", received_at=NOW, occurred_at=NOW, online=False)
    replayed = AvailabilityChanged(
        device_id="p1", received_at=NOW, occurred_at=NOW, online=True, retained=True
    )
    online = AvailabilityChanged(device_id="p1", received_at=NOW, occurred_at=NOW, online=True)
    assert engine.evaluate(offline, PENDANT, NOW) == ()
    assert engine.evaluate(replayed, PENDANT, NOW) == ()
    assert engine.evaluate(online, PENDANT, NOW) == (
        RecordSighting(sighting=Sighting(device_id="p1", seen_at=NOW, online=True)),
    )
