"""The scheduler's registry watermark on devices.created_at: a quiet pass reads no row again,
and a device whose transaction committed late (an earlier created_at) is still followed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.welfare_watch import Watermark
from devices.registry import DeviceRow

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def follow(sessions: sessionmaker[Session], mark: Watermark) -> list[str]:
    query = select(DeviceRow.id, DeviceRow.created_at, DeviceRow.elder_id)
    with sessions.begin() as session:
        return sorted(str(key) for key, _ in mark.since(session, query, DeviceRow.created_at))


def add(sessions: sessionmaker[Session], *devices: tuple[str, datetime]) -> None:
    with sessions.begin() as session:
        session.add_all(DeviceRow(id=i, model="pir-motion", created_at=at) for i, at in devices)


def test_a_bulk_import_is_read_once_and_a_late_commit_is_still_followed(
    sessions: sessionmaker[Session],
) -> None:
    add(sessions, *((f"d{n:03}", T0) for n in range(300)))  # one import: one created_at
    mark = Watermark(fixed=True)
    assert len(follow(sessions, mark)) == 300
    statements: list[str] = []
    engine = sessions.kw["bind"]

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert follow(sessions, mark) == []
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # A count of the lag's rows, not the rows: nothing new, nothing read again.
    assert len(statements) == 1
    assert "count(" in statements[0].lower()

    add(sessions, ("new", T0 + timedelta(seconds=30)))
    assert follow(sessions, mark) == ["new"]
    # Committed late: its created_at is before the mark, within the lag.
    add(sessions, ("late", T0 + timedelta(seconds=10)))
    assert follow(sessions, mark) == ["late"]
    assert follow(sessions, mark) == []
    # Older than the lag: the watermark's documented limit, as before.
    add(sessions, ("ancient", T0 - timedelta(minutes=5)))
    assert follow(sessions, mark) == []


def test_without_fixed_times_the_same_rows_are_followed(sessions: sessionmaker[Session]) -> None:
    add(sessions, ("a", T0), ("b", T0))
    mark = Watermark()
    assert follow(sessions, mark) == ["a", "b"]
    add(sessions, ("late", T0 - timedelta(seconds=10)))
    assert follow(sessions, mark) == ["late"]
    assert follow(sessions, mark) == []
