"""The time rules' deadlines in SQL: one row per rule and subject, indexed by when it is due.

Ingest writes them in the batch's transaction (an event moves its deadline); the scheduler
reads only what is due (``due_at <= now``, an index range: the cost does not grow with the
fleet), fires it and re-arms or disarms it in the alert's transaction, so a restart neither
loses a deadline nor fires one twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, Integer, String, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.decisions import DeadlineRule, SetDeadline
from alerting.welfare import Deadline
from devices.sql import Base, UtcDateTime


class DeadlineRow(Base):
    __tablename__ = "welfare_deadlines"

    rule: Mapped[str] = mapped_column(String(16), primary_key=True)
    # The elder's id (inactivity, check-in) or the device's (bed, test).
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    elder_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The device an alert is raised on: the one that set the deadline.
    device_id: Mapped[str] = mapped_column(String(64))
    # What the deadline counts from; an event older than it changes nothing.
    basis_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When the rule wants it; due_at is that moved by outages. Both null: disarmed (fired
    # once for this silence, or the elder is out of bed) until an event arms it again.
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_welfare_deadlines_due_at", "due_at"),)


def _insert(session: Session) -> Any:
    table = cast(Table, DeadlineRow.__table__)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _rows(deadlines: Iterable[SetDeadline]) -> list[dict[str, Any]]:
    return [
        {
            "rule": d.rule.value,
            "subject": d.subject,
            "elder_id": d.elder_id,
            "device_id": d.device_id,
            "basis_at": d.basis_at,
            "planned_at": d.due_at,
            "due_at": d.due_at,
        }
        for d in deadlines
    ]


def set_deadlines(session: Session, deadlines: Iterable[SetDeadline]) -> None:
    """Write what events said, one statement for the batch: a deadline only moves to a newer
    basis (an event delivered late changes nothing)."""
    latest: dict[tuple[DeadlineRule, str], SetDeadline] = {}
    for item in deadlines:
        key = (item.rule, item.subject)
        if key not in latest or latest[key].basis_at <= item.basis_at:
            latest[key] = item
    if not latest:
        return
    statement = _insert(session)
    excluded = statement.excluded
    table = cast(Table, DeadlineRow.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.rule, table.c.subject],
        set_={
            "elder_id": excluded.elder_id,
            "device_id": excluded.device_id,
            "basis_at": excluded.basis_at,
            "planned_at": excluded.planned_at,
            "due_at": excluded.due_at,
        },
        where=table.c.basis_at < excluded.basis_at,
    )
    # Sorted: concurrent writers take the rows' locks in one order (no deadlock).
    session.execute(
        statement, _rows(sorted(latest.values(), key=lambda d: (d.rule.value, d.subject)))
    )


def arm_if_absent(session: Session, deadlines: Sequence[SetDeadline]) -> None:
    """Start watching subjects nobody has heard from yet; an existing deadline is kept."""
    if not deadlines:
        return
    statement = _insert(session).on_conflict_do_nothing()
    session.execute(statement, _rows(deadlines))


def due_deadlines(session: Session, now: datetime, limit: int) -> list[DeadlineRow]:
    """The earliest deadlines due at ``now``, at most ``limit`` (locked on PostgreSQL, so an
    event that moves one waits for the scheduler's decision about it)."""
    return list(
        session.scalars(
            select(DeadlineRow)
            .where(DeadlineRow.due_at <= now)
            .order_by(DeadlineRow.due_at)
            .limit(limit)
            .with_for_update()
        )
    )


def deadlines_of(session: Session, elder_ids: Iterable[int]) -> list[DeadlineRow]:
    ids = sorted(set(elder_ids))
    if not ids:
        return []
    return list(session.scalars(select(DeadlineRow).where(DeadlineRow.elder_id.in_(ids))))


def as_deadline(row: DeadlineRow) -> Deadline:
    planned = row.planned_at or row.due_at or row.basis_at  # only armed rows are asked
    return Deadline(
        rule=DeadlineRule(row.rule),
        subject=row.subject,
        elder_id=row.elder_id,
        device_id=row.device_id,
        basis_at=row.basis_at,
        planned_at=planned,
    )


def drop(session: Session, rule: DeadlineRule, subject: str) -> None:
    session.execute(
        delete(DeadlineRow).where(DeadlineRow.rule == rule.value, DeadlineRow.subject == subject)
    )


def keep(
    session: Session,
    row: DeadlineRow,
    *,
    basis_at: datetime,
    planned_at: datetime | None,
    due_at: datetime | None,
) -> None:
    """Re-arm, move or disarm a deadline the scheduler read, unless an event moved it since."""
    session.execute(
        update(DeadlineRow)
        .where(
            DeadlineRow.rule == row.rule,
            DeadlineRow.subject == row.subject,
            DeadlineRow.basis_at == row.basis_at,
        )
        .values(basis_at=basis_at, planned_at=planned_at, due_at=due_at)
        .execution_options(synchronize_session=False)
    )
