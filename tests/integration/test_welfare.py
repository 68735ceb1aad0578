"""The welfare and periodic-test time rules against a real database (SQLite and PostgreSQL):
events through the ingest pipeline, deadlines fired by the scheduler, on a virtual clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.deadlines import DeadlineRow
from alerting.engine import RulesEngine
from alerting.platform import PulseRow, beat
from alerting.scheduler import Scheduler
from alerting.store import AlertEventRow, AlertRow, get_timeline
from anxin.database import open_database, upgrade
from devices.catalogue import CATALOGUE
from devices.codec import NativeCodec
from devices.elders import ElderRow
from devices.registry import DeviceRow
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import delivery as mqtt_delivery
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin, wait_until

# 08:00 in Shanghai.
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
NEVER_DOWN = timedelta(days=60)  # virtual time jumps: a pulse gap is no outage here


class Home:
    """Elders and devices, the ingest pipeline and the scheduler, on a clock the test moves."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions, self.now = sessions, T0
        self.engine = RulesEngine()
        self.pipeline = IngestPipeline(
            sessions=sessions,
            decoder=MessageDecoder(native=NativeCodec()),
            engine=self.engine,
            clock=lambda: self.now,
        )
        self.scheduler = self.new_scheduler()

    def new_scheduler(self) -> Scheduler:
        return Scheduler(
            sessions=self.sessions,
            engine=self.engine,
            catalogue=CATALOGUE,
            clock=lambda: self.now,
        )

    def elder(self, devices: dict[str, str], status: str = "active", **welfare: Any) -> int:
        with self.sessions.begin() as session:
            elder = ElderRow(name="测试", categories=[], welfare=welfare or None)
            session.add(elder)
            session.flush()
            for device_id, model in devices.items():
                session.add(
                    DeviceRow(
                        id=device_id,
                        model=model,
                        elder_id=elder.id,
                        status=status,
                        created_at=self.now,
                    )
                )
            return elder.id

    def send(self, device_id: str, kind: str) -> None:
        payload = json.dumps({"ts": self.now.isoformat(), "type": kind})
        self.pipeline.store([mqtt_delivery(f"anxin/v1/{device_id}/event", payload, self.now)])

    def at(self, moment: datetime, *, listening: bool = True) -> list[str]:
        """Move the clock to ``moment`` and let the scheduler look: the alert types raised."""
        self.now = moment
        if listening:
            with self.sessions.begin() as session:
                beat(session, moment, timeout=NEVER_DOWN)
        changes = self.scheduler.step()
        # Link supervision runs too (the sensors here send no heartbeats): not these rules.
        return [c.type for c in changes if c.kind == "alert.created" and c.type != "device_offline"]

    def alerts(self, kind: str) -> list[AlertRow]:
        with self.sessions() as session:
            return list(
                session.scalars(select(AlertRow).where(AlertRow.type == kind).order_by(AlertRow.id))
            )

    def timeline(self, alert_id: int) -> list[tuple[str, str]]:
        with self.sessions() as session:
            return [(e.action, e.actor) for e in get_timeline(session, alert_id)]


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def test_inactivity_fires_once_survives_a_restart_and_movement_resolves_it(
    sessions: sessionmaker[Session],
) -> None:
    home = Home(sessions)
    elder = home.elder({"m1": "pir-motion", "c1": "door-contact"})
    away = home.elder({"m2": "pir-motion"}, status="maintenance")
    home.elder({"p9": "sos-pendant"})  # no motion or door sensor: not watched for inactivity
    assert home.at(T0) == []
    home.now = hours(1)
    home.send("m1", "motion")  # 09:00: due 21:00
    assert home.at(hours(12.9)) == []
    assert home.at(hours(13)) == ["inactivity"]
    (alert,) = home.alerts("inactivity")
    assert (alert.elder_id, alert.device_id, alert.category) == (elder, "m1", "welfare")
    # A restart: the deadline was disarmed with the alert, in one transaction.
    home.scheduler = home.new_scheduler()
    assert home.at(hours(14)) == []
    # The elder opens the door: the alert resolves itself.
    home.send("c1", "door_open")
    (alert,) = home.alerts("inactivity")
    assert alert.status == "resolved"
    assert home.timeline(alert.id)[-1] == ("auto_resolved", "system")
    # Silent again since 22:00: the night does not count, a new alert 12 waking hours after
    # 07:00, at 19:00 the next day. The elder whose sensor is in maintenance, and the one with
    # no motion or door sensor, are never alerted.
    assert home.at(hours(34.9)) == []
    assert home.at(hours(35)) == ["inactivity"]
    assert [a.elder_id for a in home.alerts("inactivity")] == [elder, elder]
    assert away != elder


def test_a_resolved_inactivity_alert_is_not_raised_again_after_a_restart(
    sessions: sessionmaker[Session],
) -> None:
    home = Home(sessions)
    home.elder({"m1": "pir-motion"})
    home.at(T0)
    home.send("m1", "motion")
    assert home.at(hours(12)) == ["inactivity"]
    with sessions.begin() as session:  # a dispatcher phoned: the elder is fine
        session.get_one(AlertRow, home.alerts("inactivity")[0].id).status = "resolved"
    home.scheduler = home.new_scheduler()
    assert home.at(hours(20)) == []
    # Movement (at 04:00 local) arms it again, counted from 07:00: due at 19:00.
    home.send("m1", "motion")
    assert home.at(hours(34.9)) == []
    assert home.at(hours(35)) == ["inactivity"]


def test_an_outage_moves_the_inactivity_deadline(sessions: sessionmaker[Session]) -> None:
    home = Home(sessions)
    home.elder({"m1": "pir-motion"})
    home.at(T0)
    home.send("m1", "motion")
    home.at(hours(5))
    # Ingest is cut off from the broker for an hour; then pulses again (a real gap).
    home.now = hours(6)
    with sessions.begin() as session:
        beat(session, home.now)
    assert home.at(hours(6.5)) == []
    assert home.at(hours(12.5)) == []
    assert home.at(hours(13)) == ["inactivity"]
    (alert,) = home.alerts("inactivity")
    assert alert.attributes["outage_s"] == 3600


def test_checkin_bed_and_test_deadlines_alarm_and_restore(
    sessions: sessionmaker[Session],
) -> None:
    home = Home(sessions)
    elder = home.elder({"p1": "sos-pendant", "b1": "bed-sensor"}, checkin=True, inactivity_h=0)
    home.elder({"p2": "sos-pendant"})  # not opted in
    assert home.at(T0) == []  # 08:00: today's check-in is due at 10:00
    assert home.at(hours(2)) == ["checkin_missed"]
    home.send("p1", "checkin")  # late, 10:00
    assert [a.status for a in home.alerts("checkin_missed")] == ["resolved"]
    # The next day: checked in on time; to bed at 22:30, still in bed at 09:00 the day after.
    home.now = hours(25)
    home.send("p1", "checkin")
    home.now = hours(38.5)
    home.send("b1", "bed_enter")
    assert home.at(hours(50)) == ["bed_not_vacated", "checkin_missed"]
    home.send("b1", "bed_exit")
    assert [a.status for a in home.alerts("bed_not_vacated")] == ["resolved"]
    assert {a.elder_id for a in home.alerts("checkin_missed")} == {elder}
    # No test from either pendant for 7 days (counted from when watching began).
    raised = home.at(T0 + timedelta(days=7))
    assert raised.count("test_overdue") == 2
    home.send("p1", "test")
    statuses = {a.device_id: a.status for a in home.alerts("test_overdue")}
    assert statuses == {"p1": "resolved", "p2": "new"}


def test_an_elder_opting_in_is_followed_without_a_restart(
    sessions: sessionmaker[Session],
) -> None:
    home = Home(sessions)
    elder = home.elder({"p1": "sos-pendant"}, inactivity_h=0)
    assert home.at(T0) == []
    with sessions.begin() as session:
        session.get_one(ElderRow, elder).welfare = {"checkin": True, "checkin_by": "11:00:00"}
    assert home.at(hours(1)) == []
    assert home.at(hours(3)) == ["checkin_missed"]
    with sessions() as session:
        (row,) = session.scalars(select(DeadlineRow).where(DeadlineRow.rule == "checkin"))
        assert row.due_at == hours(27)  # tomorrow 11:00


@contextmanager
def counting(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    """The SQL statements run meanwhile."""
    statements: list[str] = []
    bind = sessions.kw["bind"]

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(bind, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(bind, "before_cursor_execute", count)


def work_per_step(sessions: sessionmaker[Session], elders: int) -> tuple[int, int, int]:
    """Statements of 20 scheduler passes and of 20 ingest batches of heartbeats and movements,
    and deadlines examined, with a fleet of ``elders`` elders (one motion sensor each)."""
    home = Home(sessions)
    with sessions.begin() as session:
        rows = [ElderRow(name="测试", categories=[]) for _ in range(elders)]
        session.add_all(rows)
        session.flush()
        session.add_all(
            DeviceRow(id=f"m{i}", model="pir-motion", elder_id=row.id, created_at=T0)
            for i, row in enumerate(rows)
        )
    home.at(T0)  # the one pass that reads the whole registry
    home.scheduler.welfare.examined = 0
    with counting(sessions) as statements:
        for step in range(20):
            home.at(T0 + timedelta(seconds=5 * (step + 1)))
    scheduler = len(statements)
    with counting(sessions) as statements:
        for step in range(20):
            home.now = T0 + timedelta(minutes=2 * (step + 1))
            deliveries = [
                Delivery(
                    topic=f"anxin/v1/m{(step + n) % 20}/{'event' if n % 2 else 'heartbeat'}",
                    payload=json.dumps({"type": "motion"} if n % 2 else {}).encode(),
                    qos=1,
                    retain=False,
                    mid=n,
                    connection=1,
                    received_at=home.now,
                )
                for n in range(10)
            ]
            home.pipeline.store(deliveries)
    return scheduler, len(statements), home.scheduler.welfare.examined


def test_deadline_work_does_not_grow_with_the_fleet(sessions: sessionmaker[Session]) -> None:
    small = work_per_step(sessions, elders=20)
    with sessions.begin() as session:  # the same database, emptied: a ten times larger fleet
        for table in (DeadlineRow, AlertEventRow, AlertRow, PulseRow, DeviceRow, ElderRow):
            session.query(table).delete()
    large = work_per_step(sessions, elders=200)
    print(f"\nstatements (scheduler, ingest), deadlines examined: {small} vs {large}")
    assert small == large
    assert small[2] == 0  # a quiet fleet: no deadline read at all


# Seven seconds of silence, no quiet hours: the rule runs in the test's real time.
FAST_RULES = """
[welfare]
inactivity_h = 0.002
quiet_from = "00:00"
quiet_until = "00:00"
"""


def test_through_a_real_broker_silence_alerts_and_an_opened_door_resolves_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(FAST_RULES)
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url, ANXIN_RULES_FILE=str(rules))
    setup.add_user("dispatcher1", "correct horse battery")
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        # Wanders, and for this elder the night is all day long.
        welfare = {"wandering": True, "night_from": "00:00:00", "night_until": "23:59:59"}
        elder = ElderRow(name="测试", categories=[], welfare=welfare)
        session.add(elder)
        session.flush()
        session.add_all(
            [
                DeviceRow(id="m1", model="pir-motion", elder_id=elder.id),
                DeviceRow(id="c1", model="door-contact", elder_id=elder.id),
            ]
        )
    engine.dispose()

    def alerts(token: str) -> dict[str, str]:
        response = httpx.get(
            f"{setup.api_url}/api/v1/alerts?status=all",
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        return {a["type"]: a["status"] for a in response.json()["items"]}

    with running_anxin(setup):
        token = setup.token("dispatcher1", "correct horse battery")
        mosquitto_pub(mosquitto.port, "anxin/v1/m1/event", '{"type": "motion"}', qos=1)
        found = wait_until(lambda: alerts(token).get("inactivity"), within_s=40)
        assert found == "new"
        mosquitto_pub(mosquitto.port, "anxin/v1/c1/event", '{"type": "door_open"}', qos=1)
        wait_until(lambda: alerts(token).get("inactivity") == "resolved" or None)
        assert alerts(token)["night_door"] == "new"


def test_a_batch_of_heartbeats_costs_the_welfare_rules_no_statement(
    sessions: sessionmaker[Session],
) -> None:
    home = Home(sessions)
    home.elder({f"m{n}": "pir-motion" for n in range(10)})
    beats = [
        Delivery(
            topic=f"anxin/v1/m{n}/heartbeat",
            payload=b"{}",
            qos=1,
            retain=False,
            mid=n,
            connection=1,
            received_at=home.now,
        )
        for n in range(10)
    ]
    with counting(sessions) as statements:
        home.pipeline.store(beats)
    assert statements
    assert not [s for s in statements if "welfare_deadlines" in s]
    # No query of the elders' open welfare alerts (the open alerts of the devices are read anyway).
    assert not [s for s in statements if "alerts.elder_id IN" in s]
