"""Escalation of unclaimed alerts, reminders and contacts' notification, on a virtual clock
against a real database (SQLite and PostgreSQL through the ``sessions`` fixture)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle
from alerting.escalation import Escalator
from alerting.model import AlertType
from alerting.notifiers import Channel, MemoryNotifier
from alerting.outbox import OutboxWorker
from alerting.rules import RuleSet
from alerting.store import AlertRow
from anxin.database import alembic_config, open_database, upgrade
from tests.support.desk import ALL_CHANNELS, HOUR, MINUTE, T0, Desk, add_elder

T = TypeVar("T")
WITHIN_S = 20.0


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def test_an_unclaimed_critical_alert_is_escalated_at_60_s_not_59(
    sessions: sessionmaker[Session],
) -> None:
    desk = Desk(sessions)
    alert_id = desk.raise_alert("p1")
    desk.at(59)
    assert desk.alert(alert_id).status == "new"
    assert desk.outbox() == []
    desk.at(60)
    row = desk.alert(alert_id)
    assert (row.status, row.claimed_by, row.escalated_at) == ("escalated", None, desk.now)
    (escalated,) = desk.events(alert_id, "escalated")
    assert escalated.actor == "system"
    assert escalated.detail == {
        "from": "new",
        "reason": "not claimed within 60 s",
        "waited_s": 60,
    }
    (notice,) = desk.outbox()
    assert (notice.channel, notice.kind, notice.alert_ids) == (
        "supervisors",
        "alert.escalated",
        [alert_id],
    )
    assert notice.payload["alert"]["waited_s"] == 60
    assert notice.payload["text"].startswith("【安心】紧急呼叫（紧急）告警")


def test_a_claim_at_59_s_prevents_it(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions)
    alert_id = desk.raise_alert("p1")
    desk.at(59)
    desk.claim(alert_id)
    desk.at(3600, every=MINUTE)
    assert desk.alert(alert_id).status == "claimed"
    assert desk.actions(alert_id) == ["created", "claimed"]
    assert desk.outbox() == []


def test_reminders_every_interval_until_claimed_and_bounded(
    sessions: sessionmaker[Session],
) -> None:
    desk = Desk(sessions)
    claimed_later = desk.raise_alert("p1")
    never_claimed = desk.raise_alert("p2")
    desk.at(60 + 3 * 60)
    reminders = desk.events(claimed_later, "escalation_reminder")
    assert [e.at - T0 for e in reminders] == [timedelta(seconds=s) for s in (120, 180, 240)]
    assert [e.detail["reminder"] for e in reminders] == [1, 2, 3]
    desk.at(250)
    desk.claim(claimed_later)
    row = desk.alert(claimed_later)
    assert (row.status, row.claimed_by) == ("claimed", "wang")
    assert desk.events(claimed_later, "claimed")[0].detail == {
        "from": "escalated",
        "ack": "claimed",
    }
    desk.at(3600, every=MINUTE)
    assert len(desk.events(claimed_later, "escalation_reminder")) == 3
    # The other one is reminded at most max_reminders (10) times, then left to the queue.
    assert len(desk.events(never_claimed, "escalation_reminder")) == 10
    assert desk.alert(never_claimed).reminders == 10
    kinds = [(r.kind, r.alert_ids) for r in desk.outbox()]
    assert kinds.count(("alert.escalation_reminder", [never_claimed])) == 10
    assert kinds.count(("alert.escalation_reminder", [claimed_later])) == 3


def test_a_restart_neither_repeats_nor_loses_an_escalation(
    sessions: sessionmaker[Session],
) -> None:
    desk = Desk(sessions)
    alert_id = desk.raise_alert("p1")
    desk.at(30)
    desk.restart()
    desk.at(60)
    desk.restart()
    desk.at(65)
    desk.restart()
    desk.at(120)
    assert desk.actions(alert_id) == ["created", "escalated", "escalation_reminder"]
    assert len(desk.outbox()) == 2


def test_a_released_alert_gets_its_time_again(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions)
    alert_id = desk.raise_alert("p1")
    desk.at(10)
    desk.claim(alert_id)
    desk.at(100)
    with sessions.begin() as session:
        lifecycle.release(session, alert_id, actor="wang", now=desk.now, may_override=False)
    desk.at(155)
    assert desk.alert(alert_id).status == "new"
    desk.at(160)
    assert desk.alert(alert_id).status == "escalated"
    assert desk.events(alert_id, "escalated")[0].detail["waited_s"] == 60


def test_low_priority_alerts_wait_and_high_ones_get_three_minutes(
    sessions: sessionmaker[Session],
) -> None:
    desk = Desk(sessions)
    battery = desk.raise_alert("p1", AlertType.LOW_BATTERY)
    leak = desk.raise_alert("p2", AlertType.WATER_LEAK)
    desk.at(175)
    assert desk.alert(leak).status == "new"
    desk.at(180)
    assert desk.alert(leak).status == "escalated"
    desk.at(86_400, every=HOUR)
    assert desk.actions(battery) == ["created"]


def test_contacts_are_told_in_calling_order_once(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions)
    # Registered out of order; position is the calling order.
    elder = add_elder(sessions, [(2, "neighbour"), (1, "family"), (3, "community_worker")])
    alert_id = desk.raise_alert("p1", elder_id=elder)
    desk.at(295)
    assert [r.channel for r in desk.outbox()].count("contacts") == 0
    desk.at(300)
    contacts = [r for r in desk.outbox() if r.channel == "contacts"]
    assert [r.payload["contact"]["position"] for r in contacts] == [1, 2, 3]
    assert [r.payload["contact"]["relation"] for r in contacts] == [
        "family",
        "neighbour",
        "community_worker",
    ]
    first = contacts[0].payload
    assert first["contact"]["phone"] == "13900139001"
    assert first["elder"] == {"id": elder, "name": "张秀英"}
    assert first["alert"]["id"] == alert_id
    assert first["text"].startswith("【安心】您的家人张秀英于11月22日11:00发出紧急呼叫")
    (notifying,) = desk.events(alert_id, "contacts_notifying")
    assert notifying.detail == {"contacts": 3, "after_s": 300}
    assert desk.alert(alert_id).contacts_notified_at == desk.now
    desk.at(3600, every=MINUTE)
    assert len([r for r in desk.outbox() if r.channel == "contacts"]) == 3


def test_contacts_not_told_say_why(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions, channels=frozenset({Channel.SUPERVISORS}))
    elder = add_elder(sessions, [(1, "family")])
    lonely = add_elder(sessions, [])
    no_channel = desk.raise_alert("p1", elder_id=elder)
    no_contacts = desk.raise_alert("p2", elder_id=lonely)
    unregistered = desk.raise_alert("p3")
    claimed = desk.raise_alert("p4", elder_id=elder)
    desk.claim(claimed)
    desk.at(300)
    reasons = {
        alert_id: [e.detail["reason"] for e in desk.events(alert_id, "contacts_not_notified")]
        for alert_id in (no_channel, no_contacts, unregistered, claimed)
    }
    assert reasons == {
        no_channel: ["no contact channel configured"],
        no_contacts: ["no contacts"],
        unregistered: ["no elder known"],
        claimed: [],
    }
    assert [r.channel for r in desk.outbox()].count("contacts") == 0


def test_no_supervisor_channel_still_escalates(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions, channels=frozenset())
    alert_id = desk.raise_alert("p1")
    desk.at(120)
    assert desk.actions(alert_id) == ["created", "escalated", "escalation_reminder"]
    assert desk.outbox() == []


def test_a_backlog_after_an_outage_is_escalated_as_one_digest(
    sessions: sessionmaker[Session],
) -> None:
    """The scheduler was not running for ten minutes: the twelve SOS that waited are escalated
    at once (the elders waited too), each timeline says how late, and the supervisors get one
    digest, not twelve messages."""
    desk = Desk(sessions)
    alert_ids = [desk.raise_alert(f"p{i}") for i in range(12)]
    desk.now = T0 + timedelta(minutes=10)  # nothing ran meanwhile
    changes = desk.scheduler.step()
    assert sorted(c.alert_id for c in changes) == alert_ids
    for alert_id in alert_ids:
        (escalated,) = desk.events(alert_id, "escalated")
        assert escalated.detail["late_s"] == 540
        # One escalation, not the ten reminders it missed.
        assert desk.events(alert_id, "escalation_reminder") == []
    supervisors = [r for r in desk.outbox() if r.channel == "supervisors"]
    (digest,) = supervisors
    assert digest.kind == "alert.escalation_digest"
    assert digest.alert_ids == alert_ids
    assert digest.payload["catch_up"] is True
    assert "平台恢复后补发" in digest.payload["text"]
    # Delivered once, it is on every alert's timeline.
    notifier = MemoryNotifier()
    worker = OutboxWorker(
        sessions=sessions,
        notifiers={Channel.SUPERVISORS: notifier},
        rule=desk.rules.notify,
        clock=lambda: desk.now,
    )
    worker.drain()
    assert [n.delivery_id for n in notifier.sent] == [digest.id]
    for alert_id in alert_ids:
        (notified,) = desk.events(alert_id, "notified")
        assert notified.detail["digest_of"] == 12


def test_a_pass_is_bounded(sessions: sessionmaker[Session]) -> None:
    rules = RuleSet.model_validate({"escalation": {"max_per_pass": 4}})
    desk = Desk(sessions, rules=rules, channels=frozenset())
    alert_ids = [desk.raise_alert(f"p{i}") for i in range(10)]
    desk.now = T0 + timedelta(seconds=60)
    assert len(desk.scheduler.step()) == 4
    assert len(desk.scheduler.step()) == 4
    assert len(desk.scheduler.step()) == 2
    assert {desk.alert(a).status for a in alert_ids} == {"escalated"}


def in_threads(*work: Callable[[], T]) -> list[T | BaseException]:
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(job) for job in work]
        return [f.exception(timeout=WITHIN_S * 2) or f.result() for f in futures]


def test_a_claim_racing_the_escalation_always_gets_the_alert(
    sessions: sessionmaker[Session],
) -> None:
    """At 60 s a dispatcher claims while the scheduler escalates, both having read the alert as
    new: the claim wins, or comes after the escalation and still takes the alert. Never two
    escalations, never a lost claim, twenty times over."""
    desk = Desk(sessions)
    for n in range(20):
        desk.now = T0 + timedelta(minutes=n)
        alert_id = desk.raise_alert(f"p{n}")
        moment = desk.now + timedelta(seconds=60)
        start = threading.Barrier(2, timeout=WITHIN_S)

        def claimer(
            alert_id: int = alert_id, start: threading.Barrier = start, moment: datetime = moment
        ) -> str:
            with sessions.begin() as session:
                seen = session.get(AlertRow, alert_id)
                assert seen is not None
                assert seen.status == "new"
                start.wait()
                lifecycle.claim(session, alert_id, actor="wang", now=moment)
            return "claimed"

        def escalator(start: threading.Barrier = start, moment: datetime = moment) -> Any:
            with sessions.begin() as session:
                start.wait()
                return desk.escalator.step(session, moment)

        outcomes = in_threads(claimer, escalator)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        row = desk.alert(alert_id)
        assert (row.status, row.claimed_by) == ("claimed", "wang")
        actions = [a for a in desk.actions(alert_id) if a != "created"]
        assert actions in (["claimed"], ["escalated", "claimed"]), actions
        notices = [r for r in desk.outbox() if r.alert_ids == [alert_id]]
        assert len(notices) == actions.count("escalated")
    # Afterwards nothing is due: every alert is claimed.
    desk.at(20 * 60 + 600, every=MINUTE)
    assert all(desk.alert(i).status == "claimed" for i in range(1, 21))


def test_two_schedulers_escalate_once(sessions: sessionmaker[Session]) -> None:
    desk = Desk(sessions)
    alert_ids = [desk.raise_alert(f"p{i}") for i in range(5)]
    other = Escalator(
        escalation=desk.rules.escalation, notify=desk.rules.notify, channels=ALL_CHANNELS
    )
    moment = T0 + timedelta(seconds=60)
    start = threading.Barrier(2, timeout=WITHIN_S)

    def run(escalator: Escalator) -> Callable[[], int]:
        def go() -> int:
            with sessions.begin() as session:
                start.wait()
                return len(escalator.step(session, moment))

        return go

    outcomes = in_threads(run(desk.escalator), run(other))
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert sum(o for o in outcomes if isinstance(o, int)) == 5
    for alert_id in alert_ids:
        assert desk.actions(alert_id) == ["created", "escalated"]
    assert len(desk.outbox()) == 5


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_migration_puts_open_alerts_in_the_queue_since_they_were_raised(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'anxin.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine, sessions = open_database(url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO alerts (device_id, type, category, priority, priority_rank,"
                    " status, count, created_at, updated_at, occurred_at, last_occurred_at,"
                    " attributes) VALUES ('p1', 'sos', 'emergency', 'critical', 0, 'new', 1,"
                    " :t, :t, :t, :t, '{}')"
                ),
                {"t": T0.replace(tzinfo=None) if backend == "sqlite" else T0},
            )
        upgrade(engine)
        with sessions() as session:
            (row,) = session.scalars(select(AlertRow)).all()
        assert (row.queued_at, row.reminders, row.escalated_at) == (T0, 0, None)
        # And it is escalated like any other.
        desk = Desk(sessions)
        desk.at(60)
        assert desk.alert(row.id).status == "escalated"
        downgrade(engine, "0001")
        upgrade(engine)
    finally:
        engine.dispose()
