"""The scheduler's visit pass on a virtual clock, against SQLite: a welfare alert left open
becomes a visit once, routine visits come due per category, an overdue visit goes to the
supervisors once (with an outbox notice), and a restart (a new planner) repeats nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting import visit_store
from alerting.model import AlertType
from alerting.notifiers import Channel, Kind
from alerting.outbox import OutboxRow
from alerting.rules import load_rules
from alerting.visit_kpis import visit_kpis
from alerting.visit_planner import VisitPlanner
from alerting.visit_rules import VisitRules
from alerting.visit_store import VisitEventRow, VisitRow
from anxin.database import open_database, upgrade
from tests.support.api_world import Registry, add_registry, raise_alert

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
SUPERVISORS = frozenset({Channel.SUPERVISORS})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], Registry]]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'anxin.db'}")
    upgrade(engine)
    with sessions.begin() as session:
        registry = add_registry(session)  # 张秀英: living_alone + advanced_age; 赵强: none
    yield sessions, registry
    engine.dispose()


def step(sessions: sessionmaker[Session], planner: VisitPlanner, at: datetime) -> int:
    with sessions.begin() as session:
        return planner.step(session, at)


def visits(sessions: sessionmaker[Session]) -> list[VisitRow]:
    with sessions() as session:
        return list(session.scalars(select(VisitRow).order_by(VisitRow.id)))


def test_the_packaged_rules_visit_living_alone_and_advanced_age_weekly() -> None:
    rules = load_rules().visits
    assert [(sorted(r.categories), r.every_days) for r in rules.routine] == [
        (["advanced_age", "living_alone"], 7)
    ]
    assert (rules.welfare_after_s, rules.overdue_after_s, rules.followup_due_h) == (14400, 3600, 24)


def test_a_welfare_alert_left_open_becomes_one_visit(
    db: tuple[sessionmaker[Session], Registry],
) -> None:
    sessions, registry = db
    with sessions.begin() as session:
        welfare = raise_alert(session, "p-zhao", registry.zhao, T0, AlertType.INACTIVITY)
        raise_alert(session, "p-zhao", registry.zhao, T0, AlertType.LOW_BATTERY)  # not welfare
    planner = VisitPlanner(VisitRules(welfare_after_s=4 * 3600, overdue_after_s=0))
    assert step(sessions, planner, T0 + timedelta(hours=4) - timedelta(seconds=1)) == 0
    assert step(sessions, planner, T0 + timedelta(hours=4)) == 1
    assert step(sessions, VisitPlanner(planner._rules), T0 + timedelta(hours=5)) == 0  # restart
    [visit] = visits(sessions)
    assert (visit.reason, visit.alert_id, visit.elder_id, visit.created_by) == (
        "welfare",
        welfare,
        registry.zhao,
        "system",
    )
    assert visit.due_at == T0 + timedelta(hours=8)


def test_routine_visits_come_due_each_period(db: tuple[sessionmaker[Session], Registry]) -> None:
    sessions, registry = db
    rules = VisitRules.model_validate(
        {
            "routine": [{"categories": ["living_alone", "advanced_age"], "every_days": 7}],
            "routine_lead_h": 24,
            "welfare_after_s": 0,
            "overdue_after_s": 0,
        }
    )
    planner = VisitPlanner(rules)
    assert step(sessions, planner, T0) == 1  # 张秀英 only: 赵强 is in no category
    assert step(sessions, planner, T0 + timedelta(hours=2)) == 0
    [first] = visits(sessions)
    assert (first.elder_id, first.reason, first.due_at) == (
        registry.zhang,
        "routine",
        T0 + timedelta(hours=24),
    )
    # Not done yet a week later: no second on top of it.
    assert step(sessions, planner, T0 + timedelta(days=7)) == 0
    with sessions.begin() as session:
        visit_store.complete(
            session, first.id, outcome=visit_store.VisitOutcome.WELL, note=None,
            actor="visitor", now=T0 + timedelta(days=1), may_override=False,
        )  # fmt: skip
    # The next is asked for a day before it is due: 7 days after the first's due time.
    assert step(sessions, VisitPlanner(rules), T0 + timedelta(days=7) - timedelta(minutes=1)) == 0
    assert step(sessions, VisitPlanner(rules), T0 + timedelta(days=7)) == 1
    assert visits(sessions)[-1].due_at == T0 + timedelta(days=8)


def test_an_overdue_visit_goes_to_the_supervisors_once(
    db: tuple[sessionmaker[Session], Registry],
) -> None:
    sessions, registry = db
    with sessions.begin() as session:
        visit = visit_store.request_visit(
            session,
            elder_id=registry.zhang,
            reason=visit_store.VisitReason.MANUAL,
            due_at=T0,
            actor="dispatcher",
            now=T0 - timedelta(days=1),
        ).id
    planner = VisitPlanner(
        VisitRules(welfare_after_s=0, overdue_after_s=3600), channels=SUPERVISORS
    )
    assert step(sessions, planner, T0 + timedelta(minutes=59)) == 0
    assert step(sessions, planner, T0 + timedelta(hours=2)) == 1
    assert (
        step(sessions, VisitPlanner(planner._rules, channels=SUPERVISORS), T0 + timedelta(hours=3))
        == 0
    )
    with sessions() as session:
        row = session.get(VisitRow, visit)
        assert row is not None
        assert row.escalated_at == T0 + timedelta(hours=2)
        [event] = session.scalars(
            select(VisitEventRow).where(VisitEventRow.action == "overdue_escalated")
        )
        assert event.detail == {"overdue_s": 7200}
        [notice] = session.scalars(select(OutboxRow))
        assert (notice.channel, notice.kind) == (
            Channel.SUPERVISORS.value,
            Kind.VISIT_OVERDUE.value,
        )
        assert notice.payload["visit"]["id"] == visit
        assert "张秀英" not in str(notice.payload)  # no personal data in a notice


def test_visit_kpis_per_community_and_month(db: tuple[sessionmaker[Session], Registry]) -> None:
    sessions, registry = db
    november, december = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC)
    with sessions.begin() as session:

        def visit(elder: int, due: datetime) -> int:
            return visit_store.request_visit(
                session, elder_id=elder, reason=visit_store.VisitReason.MANUAL, due_at=due,
                actor="dispatcher", now=due - timedelta(hours=10),
            ).id  # fmt: skip

        def complete(visit_id: int, at: datetime) -> None:
            visit_store.complete(
                session, visit_id, outcome=visit_store.VisitOutcome.WELL, note=None,
                actor="visitor", now=at, may_override=False,
            )  # fmt: skip

        complete(visit(registry.zhang, november), november - timedelta(hours=6))  # 4 h after
        complete(visit(registry.zhang, november), november + timedelta(hours=2))  # late: 12 h
        visit(registry.zhang, november)  # still open, past due now: overdue
        visit(registry.zhang, december)  # open, not due yet
        visit_store.cancel(
            session, visit(registry.zhao, november), actor="dispatcher", now=november, reason=None
        )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with sessions() as session:
        rows = visit_kpis(session, datetime(2026, 11, 1, tzinfo=UTC), now + timedelta(days=30), now)
        scoped = visit_kpis(session, november - timedelta(days=30), now, now, "张家口市/崇礼区")
    zhang = "张家口市/张北县/花园街道/幸福社区"
    seen = [(r.community, r.month, r.visits, r.done, r.overdue, r.cancelled, r.open) for r in rows]
    assert seen == [
        ("张家口市/崇礼区/西湾子镇", "2026-11", 1, 0, 0, 1, 0),
        (zhang, "2026-11", 3, 2, 2, 0, 1),
        (zhang, "2026-12", 1, 0, 0, 0, 1),
    ]  # fmt: skip
    assert (rows[1].request_to_visit_p50_s, rows[1].request_to_visit_p90_s) == (28800.0, 40320.0)
    assert [r.community for r in scoped] == ["张家口市/崇礼区/西湾子镇"]
