"""The alert store on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerting.decisions import RaiseAlert
from alerting.model import ALERT_KINDS, AlertStatus, AlertType, Priority
from alerting.store import (
    AlertRow,
    ChangeKind,
    InvalidCursorError,
    StatusFilter,
    get_timeline,
    list_queue,
    raise_or_coalesce,
    recent_occurrences,
)

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def alert(device_id: str, kind: AlertType) -> RaiseAlert:
    return RaiseAlert(
        device_id=device_id,
        elder_id=None,
        type=kind,
        category=ALERT_KINDS[kind].category,
        priority=ALERT_KINDS[kind].priority,
        occurred_at=T0,
    )


def test_repeats_while_open_coalesce_into_one_alert(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        changes = [
            raise_or_coalesce(session, alert("p1", AlertType.SOS), T0 + timedelta(seconds=i))
            for i in range(10)
        ]
    assert [c.kind for c in changes] == [ChangeKind.CREATED] + [ChangeKind.UPDATED] * 9
    assert len({c.alert_id for c in changes}) == 1
    with sessions() as session:
        (row,) = session.query(AlertRow).all()
        assert row.count == 10
        assert row.created_at == T0
        assert row.updated_at == T0 + timedelta(seconds=9)
        actions = [e.action for e in get_timeline(session, row.id)]
    assert actions == ["created"] + ["coalesced"] * 9


def test_the_rate_limits_memory_is_each_devices_latest_occurrences(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        for i in range(12):
            raise_or_coalesce(session, alert("p1", AlertType.SOS), T0 + timedelta(seconds=i))
        for i in range(3):
            raise_or_coalesce(session, alert("p2", AlertType.SOS), T0 + timedelta(seconds=i))
    with sessions() as session:
        every = recent_occurrences(session, ["p1", "p2", "p3"], T0 - timedelta(seconds=1))
        latest = recent_occurrences(session, ["p1", "p2", "p3"], T0 - timedelta(seconds=1), most=5)
        since = recent_occurrences(session, ["p1"], T0 + timedelta(seconds=9), most=5)
    assert every["p1"] == tuple(T0 + timedelta(seconds=i) for i in range(12))
    assert latest == {"p1": every["p1"][-5:], "p2": every["p2"]}
    assert since == {"p1": (T0 + timedelta(seconds=10), T0 + timedelta(seconds=11))}


def test_a_resolved_alert_does_not_swallow_the_next_one(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first = raise_or_coalesce(session, alert("p1", AlertType.SOS), T0)
        row = session.get(AlertRow, first.alert_id)
        assert row is not None
        row.status = AlertStatus.RESOLVED.value
    with sessions.begin() as session:
        second = raise_or_coalesce(session, alert("p1", AlertType.SOS), T0 + timedelta(hours=1))
    assert second.kind is ChangeKind.CREATED
    assert second.alert_id != first.alert_id


def test_the_queue_is_most_urgent_first_then_oldest_and_pages(
    sessions: sessionmaker[Session],
) -> None:
    plan = [
        ("d1", AlertType.LOW_BATTERY, 0),
        ("d2", AlertType.SOS, 10),
        ("d3", AlertType.WATER_LEAK, 5),
        ("d4", AlertType.FALL, 20),
        ("d5", AlertType.SOS, 1),
    ]
    with sessions.begin() as session:
        for device_id, kind, minute in plan:
            raise_or_coalesce(session, alert(device_id, kind), T0 + timedelta(minutes=minute))
    with sessions() as session:
        first = list_queue(session, limit=2)
        second = list_queue(session, limit=2, cursor=first.next_cursor)
        third = list_queue(session, limit=2, cursor=second.next_cursor)
        critical = list_queue(session, priority=Priority.CRITICAL)
        resolved = list_queue(session, status=StatusFilter.RESOLVED)
    order = [a.device_id for page in (first, second, third) for a in page.alerts]
    assert order == ["d5", "d2", "d4", "d3", "d1"]
    assert third.next_cursor is None
    assert [a.device_id for a in critical.alerts] == ["d5", "d2", "d4"]
    assert resolved.alerts == []


@pytest.mark.parametrize("cursor", ["garbage", "W10", "WzEsICJ4IiwgMl0"])
def test_a_forged_cursor_is_refused(sessions: sessionmaker[Session], cursor: str) -> None:
    with sessions() as session, pytest.raises(InvalidCursorError):
        list_queue(session, cursor=cursor)
