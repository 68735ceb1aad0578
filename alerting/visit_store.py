"""Home visits in SQL: the visits, their timeline, and each step applied in the caller's
transaction (the caller commits).

Every step is a line in ``visit_events``, which also carries the elder's id: the elder's
visit timeline is one indexed read. A visit that came from an alert also leaves a line on that
alert's timeline when it is requested and when it is done, so a dispatcher reading the alert
sees where it went. Changes of status are compare-and-set, as the alert lifecycle's are: an
``UPDATE … WHERE id AND status AND assignee`` whose row count says whether this one won.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    CursorResult,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.compare_and_set import compare_and_set
from alerting.decisions import RaiseAlert
from alerting.model import ALERT_KINDS, AlertType
from alerting.store import AlertChange, AlertEventRow, AlertRow, raise_or_coalesce
from alerting.visits import (
    NOTE_MAX_CHARS,
    OPEN_VISIT_STATUSES,
    OVERDUE_ESCALATED,
    REQUESTED,
    TIMELINE_ACTION,
    InvalidVisit,
    NotAssignee,
    VisitAction,
    VisitConflict,
    VisitNotFound,
    VisitOutcome,
    VisitReason,
    VisitStatus,
    next_status,
)
from devices.elders import ElderRow, within_community
from devices.registry import DeviceRow
from devices.sql import Base, UtcDateTime

_OPEN = sorted(s.value for s in OPEN_VISIT_STATUSES)
_MAX_ATTEMPTS = 5


class VisitRow(Base):
    __tablename__ = "visits"
    __table_args__ = (
        # The worker's list and the overdue check: open visits by due time.
        Index("ix_visits_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    elder_id: Mapped[int] = mapped_column(ForeignKey("elders.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    # The alert it came from (alert_followup, welfare); no foreign key: alerts are never deleted
    # and a visit must not hold an alert's row.
    alert_id: Mapped[int | None] = mapped_column(Integer, index=True)
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    notes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set when the overdue visit was handed to a supervisor: once per visit.
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class VisitEventRow(Base):
    """One line of a visit's timeline, which is also the elder's."""

    __tablename__ = "visit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    elder_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class VisitResult:
    visit: VisitRow
    # An alert the step raised (needed_help), for the caller to publish after the commit.
    alert_change: AlertChange | None = None


# Requesting.


def request_visit(
    session: Session,
    *,
    elder_id: int,
    reason: VisitReason,
    due_at: datetime,
    actor: str,
    now: datetime,
    alert_id: int | None = None,
    notes: str | None = None,
) -> VisitRow:
    """A new open visit, its first timeline line, and (from an alert) a line on the alert's."""
    if session.get(ElderRow, elder_id) is None:
        raise InvalidVisit(f"elder {elder_id} not found")
    if notes is not None:
        notes = _text("notes", notes)
    row = VisitRow(
        elder_id=elder_id,
        reason=reason.value,
        alert_id=alert_id,
        status=VisitStatus.OPEN.value,
        due_at=due_at,
        notes=notes,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    detail: dict[str, Any] = {"reason": reason.value, "due_at": due_at.isoformat()}
    if alert_id is not None:
        detail["alert_id"] = alert_id
        _alert_log(session, alert_id, now, "visit_requested", actor, {"visit_id": row.id})
    _log(session, row, now, REQUESTED, actor, detail)
    return row


def open_visit_of_alert(session: Session, alert_id: int) -> VisitRow | None:
    return session.scalars(
        select(VisitRow)
        .where(VisitRow.alert_id == alert_id, VisitRow.status.in_(_OPEN))
        .order_by(VisitRow.id)
        .limit(1)
    ).one_or_none()


def open_visit_of_elder(session: Session, elder_id: int, reason: VisitReason) -> VisitRow | None:
    return session.scalars(
        select(VisitRow)
        .where(
            VisitRow.elder_id == elder_id,
            VisitRow.reason == reason.value,
            VisitRow.status.in_(_OPEN),
        )
        .order_by(VisitRow.id)
        .limit(1)
    ).one_or_none()


# The steps.


def assign(
    session: Session,
    visit_id: int,
    *,
    assignee: str,
    actor: str,
    now: datetime,
    may_override: bool,
) -> VisitResult:
    """Give the visit to ``assignee`` (``actor`` itself: a claim). Taking a visit another
    worker holds needs ``may_override``; assigning it to the one who has it changes nothing."""
    for _ in range(_MAX_ATTEMPTS):
        row = load(session, visit_id)
        current = VisitStatus(row.status)
        next_status(visit_id, VisitAction.ASSIGN, current)
        if row.assignee == assignee:
            return VisitResult(visit=row)
        if row.assignee is not None and not may_override:
            raise NotAssignee(visit_id, VisitAction.ASSIGN, row.assignee)
        detail: dict[str, Any] = {"assignee": assignee}
        if row.assignee is not None:
            detail["previous"] = row.assignee
        if _compare_and_set(
            session,
            row,
            current,
            status=VisitStatus.ASSIGNED.value,
            assignee=assignee,
            assigned_at=now,
            updated_at=now,
        ):
            return VisitResult(visit=_done(session, row, VisitAction.ASSIGN, actor, now, detail))
    raise VisitConflict(f"visit {visit_id} is being changed by others: try again")


def complete(
    session: Session,
    visit_id: int,
    *,
    outcome: VisitOutcome,
    note: str | None,
    actor: str,
    now: datetime,
    may_override: bool,
) -> VisitResult:
    """The visit was made: status done with its outcome. An open visit is taken by whoever
    completes it. ``needed_help`` raises a ``visit_needed_help`` alert for the elder."""
    if note is not None and not note.strip():
        note = None
    if note is not None:
        note = _text("note", note)
    for _ in range(_MAX_ATTEMPTS):
        row = load(session, visit_id)
        current = VisitStatus(row.status)
        next_status(visit_id, VisitAction.COMPLETE, current)
        if row.assignee is not None and row.assignee != actor and not may_override:
            raise NotAssignee(visit_id, VisitAction.COMPLETE, row.assignee)
        values: dict[str, Any] = {
            "status": VisitStatus.DONE.value,
            "outcome": outcome.value,
            "done_at": now,
            "updated_at": now,
        }
        if row.assignee is None:
            values |= {"assignee": actor, "assigned_at": now}
        if note is not None:
            values["notes"] = note if not row.notes else f"{row.notes}\n{note}"
        if _compare_and_set(session, row, current, **values):
            detail: dict[str, Any] = {"outcome": outcome.value}
            if note is not None:
                detail["note"] = note
            change = None
            if outcome is VisitOutcome.NEEDED_HELP:
                change = _raise_needed_help(session, row, now)
                detail["raised_alert_id"] = change.alert_id
            if row.alert_id is not None:
                _alert_log(
                    session,
                    row.alert_id,
                    now,
                    "visit_done",
                    actor,
                    {"visit_id": row.id, "outcome": outcome.value},
                )
            done = _done(session, row, VisitAction.COMPLETE, actor, now, detail)
            return VisitResult(visit=done, alert_change=change)
    raise VisitConflict(f"visit {visit_id} is being changed by others: try again")


def cancel(
    session: Session, visit_id: int, *, actor: str, now: datetime, reason: str | None
) -> VisitResult:
    detail: dict[str, Any] = {}
    if reason is not None and reason.strip():
        detail["reason"] = _text("reason", reason)
    for _ in range(_MAX_ATTEMPTS):
        row = load(session, visit_id)
        current = VisitStatus(row.status)
        next_status(visit_id, VisitAction.CANCEL, current)
        if _compare_and_set(
            session, row, current, status=VisitStatus.CANCELLED.value, updated_at=now
        ):
            return VisitResult(visit=_done(session, row, VisitAction.CANCEL, actor, now, detail))
    raise VisitConflict(f"visit {visit_id} is being changed by others: try again")


def mark_escalated(
    session: Session, row: VisitRow, *, now: datetime, detail: Mapping[str, Any]
) -> bool:
    """The overdue visit was handed to a supervisor: once (compare-and-set on escalated_at)."""
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(VisitRow)
            .where(
                VisitRow.id == row.id, VisitRow.escalated_at.is_(None), VisitRow.status.in_(_OPEN)
            )
            .values(escalated_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        return False
    _log(session, row, now, OVERDUE_ESCALATED, "system", detail)
    return True


def overdue_unescalated(session: Session, now: datetime, *, limit: int = 200) -> list[VisitRow]:
    """Open visits past their due time that no supervisor has been told of yet."""
    return list(
        session.scalars(
            select(VisitRow)
            .where(
                VisitRow.status.in_(_OPEN),
                VisitRow.due_at < now,
                VisitRow.escalated_at.is_(None),
            )
            .order_by(VisitRow.due_at, VisitRow.id)
            .limit(limit)
        )
    )


# Reading.


def load(session: Session, visit_id: int) -> VisitRow:
    row = session.get(VisitRow, visit_id, populate_existing=True)
    if row is None:
        raise VisitNotFound(visit_id)
    return row


def visit_timeline(session: Session, visit_id: int) -> list[VisitEventRow]:
    return list(
        session.scalars(
            select(VisitEventRow)
            .where(VisitEventRow.visit_id == visit_id)
            .order_by(VisitEventRow.id)
        )
    )


def elder_visit_timeline(
    session: Session, elder_id: int, *, limit: int = 500
) -> list[VisitEventRow]:
    return list(
        session.scalars(
            select(VisitEventRow)
            .where(VisitEventRow.elder_id == elder_id)
            .order_by(VisitEventRow.id)
            .limit(limit)
        )
    )


class InvalidVisitCursorError(ValueError):
    """The cursor was not one this store handed out."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VisitPage:
    visits: Sequence[VisitRow]
    next_cursor: str | None


def list_visits(
    session: Session,
    *,
    statuses: Sequence[VisitStatus] = (),
    communities: Sequence[str] = (),
    elder_id: int | None = None,
    assignee: str | None = None,
    due_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> VisitPage:
    """Soonest due first (then oldest id); keyset pagination by ``cursor``."""
    query = select(VisitRow).join(ElderRow, ElderRow.id == VisitRow.elder_id)
    for prefix in communities:
        if prefix:
            query = query.where(within_community(prefix))
    if statuses:
        query = query.where(VisitRow.status.in_(sorted(s.value for s in statuses)))
    if elder_id is not None:
        query = query.where(VisitRow.elder_id == elder_id)
    if assignee is not None:
        query = query.where(VisitRow.assignee == assignee)
    if due_before is not None:
        query = query.where(VisitRow.due_at < due_before)
    if cursor is not None:
        due, visit_id = _decode_cursor(cursor)
        query = query.where(
            or_(VisitRow.due_at > due, and_(VisitRow.due_at == due, VisitRow.id > visit_id))
        )
    rows = list(session.scalars(query.order_by(VisitRow.due_at, VisitRow.id).limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return VisitPage(visits=rows[:limit], next_cursor=next_cursor)


# Helpers.


def _raise_needed_help(session: Session, visit: VisitRow, now: datetime) -> AlertChange:
    """The alert a visit that found the elder needing help raises: on the device of the alert
    the visit came from, else the elder's first device, else the visit itself (``visit-12``:
    no device to tell, and the timeline says so)."""
    device_id = None
    if visit.alert_id is not None:
        origin = session.get(AlertRow, visit.alert_id)
        device_id = origin.device_id if origin is not None else None
    if device_id is None:
        device_id = session.scalar(
            select(DeviceRow.id).where(DeviceRow.elder_id == visit.elder_id).order_by(DeviceRow.id)
        )
    kind = ALERT_KINDS[AlertType.VISIT_NEEDED_HELP]
    decision = RaiseAlert(
        device_id=device_id or f"visit-{visit.id}",
        elder_id=visit.elder_id,
        type=AlertType.VISIT_NEEDED_HELP,
        category=kind.category,
        priority=kind.priority,
        occurred_at=now,
        attributes={"visit_id": visit.id},
    )
    return raise_or_coalesce(session, decision, now)


def _compare_and_set(
    session: Session, seen: VisitRow, seen_status: VisitStatus, **values: Any
) -> bool:
    return compare_and_set(
        session,
        VisitRow,
        seen.id,
        status=VisitRow.status,
        seen_status=seen_status.value,
        holder=VisitRow.assignee,
        seen_holder=seen.assignee,
        values=values,
    )


def _done(
    session: Session,
    row: VisitRow,
    action: VisitAction,
    actor: str,
    now: datetime,
    detail: Mapping[str, Any],
) -> VisitRow:
    _log(session, row, now, TIMELINE_ACTION[action], actor, detail)
    session.flush()
    session.refresh(row)
    return row


def _log(
    session: Session,
    row: VisitRow,
    at: datetime,
    action: str,
    actor: str,
    detail: Mapping[str, Any],
) -> None:
    session.add(
        VisitEventRow(
            visit_id=row.id,
            elder_id=row.elder_id,
            at=at,
            action=action,
            actor=actor,
            detail=dict(detail),
        )
    )


def _alert_log(
    session: Session, alert_id: int, at: datetime, action: str, actor: str, detail: dict[str, Any]
) -> None:
    session.add(AlertEventRow(alert_id=alert_id, at=at, action=action, actor=actor, detail=detail))


def _text(name: str, text: str) -> str:
    if not text.strip():
        raise InvalidVisit(f"{name} must not be empty")
    if len(text) > NOTE_MAX_CHARS:
        raise InvalidVisit(f"{name}: at most {NOTE_MAX_CHARS} characters")
    return text


def _encode_cursor(row: VisitRow) -> str:
    raw = json.dumps([row.due_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        due, visit_id = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(due)
        if not isinstance(visit_id, int) or when.tzinfo is None or not 0 <= visit_id < 2**31:
            raise TypeError
        return when.astimezone(UTC), visit_id
    except (ValueError, TypeError) as exc:
        raise InvalidVisitCursorError("invalid cursor") from exc
