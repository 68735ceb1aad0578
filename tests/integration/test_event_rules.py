"""Event rules through the ingest pipeline into a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.store import AlertRow, get_timeline
from devices.codec import NativeCodec
from devices.registry import register_device
from ingest.decoding import MessageDecoder
from ingest.pipeline import IngestPipeline
from tests.support.mqtt import delivery as mqtt_delivery

T0 = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)


class Fleet:
    """Publishes into the pipeline on a clock the test moves."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.now = T0
        self.sessions = sessions
        self.pipeline = IngestPipeline(
            sessions=sessions,
            decoder=MessageDecoder(native=NativeCodec()),
            engine=RulesEngine(),
            clock=lambda: self.now,
        )

    def send(self, device_id: str, kind: str, body: dict[str, object], after_s: float = 0) -> None:
        self.now += timedelta(seconds=after_s)
        payload = json.dumps({"ts": self.now.isoformat(), **body})
        self.pipeline.store([mqtt_delivery(f"anxin/v1/{device_id}/{kind}", payload, self.now)])

    def alerts(self) -> list[AlertRow]:
        with self.sessions() as session:
            return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))

    def timeline(self, alert_id: int) -> list[str]:
        with self.sessions() as session:
            return [e.action for e in get_timeline(session, alert_id)]


def fleet_of(sessions: sessionmaker[Session], **models: str) -> Fleet:
    with sessions.begin() as session:
        for device_id, model in models.items():
            register_device(session, device_id, model)
    return Fleet(sessions)


def test_a_ten_press_sos_burst_is_one_alert_counted_ten_times(
    sessions: sessionmaker[Session],
) -> None:
    fleet = fleet_of(sessions, p1="sos-pendant")
    for press in range(10):
        fleet.send("p1", "sos", {"seq": press}, after_s=1)
    (alert,) = fleet.alerts()
    assert (alert.type, alert.count, alert.status) == ("sos", 10, "new")


def test_a_fall_cancelled_in_time_is_kept_and_marked_cancelled(
    sessions: sessionmaker[Session],
) -> None:
    fleet = fleet_of(sessions, f1="fall-detector", f2="fall-detector")
    fleet.send("f1", "event", {"type": "fall"})
    fleet.send("f1", "event", {"type": "cancel"}, after_s=20)
    fleet.send("f2", "event", {"type": "fall"})
    fleet.send("f2", "event", {"type": "cancel"}, after_s=45)
    cancelled, late = fleet.alerts()
    assert (cancelled.device_id, cancelled.status) == ("f1", "cancelled")
    assert fleet.timeline(cancelled.id) == ["created", "cancelled"]
    assert (late.device_id, late.status) == ("f2", "new")
    assert fleet.timeline(late.id) == ["created", "cancel_after_window"]


def test_smoke_restore_is_noted_and_tamper_restore_resolves(
    sessions: sessionmaker[Session],
) -> None:
    fleet = fleet_of(sessions, s1="smoke-detector")
    fleet.send("s1", "event", {"type": "smoke"})
    fleet.send("s1", "event", {"type": "tamper"}, after_s=1)
    fleet.send("s1", "event", {"type": "smoke", "state": "restore"}, after_s=60)
    fleet.send("s1", "event", {"type": "tamper", "state": "restore"}, after_s=1)
    smoke, tamper = fleet.alerts()
    assert (smoke.type, smoke.status) == ("smoke", "new")
    assert fleet.timeline(smoke.id) == ["created", "restored"]
    assert (tamper.type, tamper.status) == ("tamper", "resolved")
    assert fleet.timeline(tamper.id) == ["created", "auto_resolved"]


def test_contact_id_codes_raise_the_same_alerts(sessions: sessionmaker[Session]) -> None:
    fleet = fleet_of(sessions, panel="gas-detector")
    fleet.send("panel", "event", {"cid": "1151", "zone": "3"})  # gas, new
    fleet.send("panel", "event", {"cid": "1101"}, after_s=1)  # personal emergency: SOS
    gas, sos = fleet.alerts()
    assert (gas.type, gas.priority, gas.attributes["cid"]) == ("gas", "critical", "1151")
    assert sos.type == "sos"


def test_low_battery_from_heartbeats_opens_once_and_resolves_when_recharged(
    sessions: sessionmaker[Session],
) -> None:
    fleet = fleet_of(sessions, p1="sos-pendant")
    for level in (60, 19, 15, 12):
        fleet.send("p1", "heartbeat", {"battery": level}, after_s=60)
    (alert,) = fleet.alerts()
    assert (alert.type, alert.count, alert.status) == ("low_battery", 1, "new")
    fleet.send("p1", "heartbeat", {"battery": 95}, after_s=3600)
    (alert,) = fleet.alerts()
    assert alert.status == "resolved"


def test_indoor_cold_raises_and_warming_up_resolves(sessions: sessionmaker[Session]) -> None:
    fleet = fleet_of(sessions, t1="temperature-sensor")
    fleet.send("t1", "telemetry", {"metrics": {"temperature_c": 7.5}})
    fleet.send("t1", "telemetry", {"metrics": {"temperature_c": 6.0}}, after_s=600)
    fleet.send("t1", "telemetry", {"metrics": {"temperature_c": 18.0}}, after_s=3600)
    (cold,) = fleet.alerts()
    assert (cold.type, cold.count, cold.status) == ("cold", 2, "resolved")
