"""The alert store: alerts and their timeline in SQL, with raise-or-coalesce applied atomically."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, make_transient_to_detached, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Select

from alerting.decisions import RaiseAlert
from alerting.engine import OpenAlert
from alerting.model import OPEN_STATUSES, AlertStatus, AlertType, Category, Priority
from devices.elders import ElderRow, within_community
from devices.sql import Base, UtcDateTime

_OPEN = sorted(s.value for s in OPEN_STATUSES)
_OPEN_SQL = "status IN (" + ", ".join(f"'{s}'" for s in _OPEN) + ")"


def _created_at(context: Any) -> Any:
    """A new alert enters the queue when it is created."""
    return context.get_current_parameters()["created_at"]


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Not a foreign key: an SOS from a device nobody registered is still an alert.
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    elder_id: Mapped[int | None] = mapped_column(Integer, index=True)
    type: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    priority_rank: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The device's seq of the last occurrence counted, to recognise redeliveries.
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    # Escalation (alerting/escalation.py). When the alert last entered the queue unclaimed:
    # raised, or released by a dispatcher; its claim deadline counts from here.
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=_created_at)
    # Escalated because nobody claimed it in time; the last escalation or reminder, and how
    # many reminders followed; when the elder's contacts were told.
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reminders: Mapped[int] = mapped_column(SmallInteger, default=0)
    contacts_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    timeline: Mapped[list[AlertEventRow]] = relationship(
        back_populates="alert", order_by="AlertEventRow.id", lazy="raise"
    )

    __table_args__ = (
        Index("ix_alerts_queue", "status", "priority_rank", "created_at", "id"),
        # The escalation pass's range scans: unclaimed alerts by claim deadline, escalated
        # ones by their last reminder.
        Index("ix_alerts_unclaimed", "status", "priority_rank", "queued_at"),
        Index("ix_alerts_reminded", "status", "priority_rank", "reminded_at"),
        # At most one open alert per device and type: repeats coalesce into it.
        Index(
            "uq_alerts_open_device_type",
            "device_id",
            "type",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )


class AlertEventRow(Base):
    """One line of an alert's timeline: what happened, who did it, when."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    alert: Mapped[AlertRow] = relationship(back_populates="timeline")


class ChangeKind(StrEnum):
    CREATED = "alert.created"
    UPDATED = "alert.updated"
    # A redelivery of an occurrence already counted: nothing changed.
    DUPLICATE = "alert.duplicate"


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertChange:
    alert_id: int
    kind: ChangeKind
    device_id: str
    type: str


# What lock_open_alerts found, in the session's info: the rows, and the devices looked up.
_LOCKED_ROWS = "anxin.open_alerts"
_LOCKED_DEVICES = "anxin.open_alert_devices"


# Built once, as the statements below: a batch does not pay for building and keying it.
_LOCK_OPEN = (
    select(AlertRow)
    .where(AlertRow.device_id.in_(bindparam("wanted", expanding=True)), AlertRow.status.in_(_OPEN))
    .order_by(AlertRow.id)
    .with_for_update()
)


def lock_open_alerts(session: Session, device_ids: Sequence[str]) -> None:
    """Read and lock (FOR UPDATE, in id order) the open alerts of these devices at once, for the
    raises and closes that follow in the same transaction: one query for a whole batch instead
    of one per decision. An alert another process opens meanwhile is still found (the insert
    meets it, below)."""
    wanted = sorted(set(device_ids) - session.info.get(_LOCKED_DEVICES, set()))
    if not wanted:
        return
    rows = session.scalars(_LOCK_OPEN, {"wanted": wanted})
    found: dict[tuple[str, str], AlertRow] = session.info.setdefault(_LOCKED_ROWS, {})
    for row in rows:
        found[(row.device_id, row.type)] = row
    session.info.setdefault(_LOCKED_DEVICES, set()).update(wanted)


def locked_open_alerts(
    session: Session, device_ids: Sequence[str]
) -> dict[str, dict[AlertType, OpenAlert]]:
    """open_alerts_of, from what lock_open_alerts read and locked (it is called first)."""
    lock_open_alerts(session, device_ids)
    wanted = set(device_ids)
    found: dict[str, dict[AlertType, OpenAlert]] = {}
    for (device_id, kind), row in session.info.get(_LOCKED_ROWS, {}).items():
        if device_id in wanted and row.status in _OPEN:
            alert = AlertType(kind)
            found.setdefault(device_id, {})[alert] = OpenAlert(type=alert, since=row.occurred_at)
    return found


def recent_occurrences(
    session: Session, device_ids: Sequence[str], since: datetime, most: int | None = None
) -> dict[str, tuple[datetime, ...]]:
    """When each device's occurrences since ``since`` were counted (an alert opened, a repeat
    counted), whichever process counted them: the rate limit's memory, shared by every ingest
    member. Read after lock_open_alerts, it sees every repeat committed on the open alerts.

    ``most``: only each device's latest ``most`` (the rate limit's count: it decides the same
    on them), so that a device raising hundreds a minute (a stuck button, a storm) does not
    cost hundreds of rows and comparisons at every batch."""
    wanted = sorted(set(device_ids))
    if not wanted:
        return {}
    values: dict[str, Any] = {"wanted": wanted, "since": since}
    if most is not None:
        values["most"] = most
    rows = session.execute(_recent_statement(limited=most is not None), values)
    found: dict[str, list[datetime]] = {}
    for device_id, at in rows:
        found.setdefault(device_id, []).append(at)
    return {device_id: tuple(times) for device_id, times in found.items()}


@functools.cache
def _recent_statement(*, limited: bool) -> Select[str, datetime]:
    """recent_occurrences' query, built once: building and keying it again cost some 0.4 ms a
    batch, more than running it on a small table."""
    since = bindparam("since", type_=UtcDateTime)
    occurrences = (
        select(AlertRow.device_id, AlertEventRow.at)
        .join(AlertEventRow, AlertEventRow.alert_id == AlertRow.id)
        .where(
            AlertRow.device_id.in_(bindparam("wanted", expanding=True)),
            AlertRow.updated_at >= since,  # an alert counted on since then was updated then
            AlertEventRow.at > since,
            AlertEventRow.action.in_(("created", "coalesced")),
        )
    )
    if not limited:
        return occurrences.order_by(AlertEventRow.at)
    latest = occurrences.add_columns(
        func.row_number()
        .over(partition_by=AlertRow.device_id, order_by=AlertEventRow.at.desc())
        .label("latest")
    ).subquery()
    return (
        select(latest.c.device_id, latest.c.at)
        .where(latest.c.latest <= bindparam("most"))
        .order_by(latest.c.at)
    )


def has_open_alert(session: Session, device_id: str, alert: AlertType) -> bool | None:
    """Whether lock_open_alerts found an open alert of the device and type (None: not looked)."""
    if device_id not in session.info.get(_LOCKED_DEVICES, ()):
        return None
    return _open_row(session, device_id, alert) is not None


def open_new_alerts(
    session: Session, decisions: Sequence[RaiseAlert], now: datetime
) -> list[AlertChange | None]:
    """Open these alerts, each of a device with no open alert of its type, in one INSERT
    (PostgreSQL and SQLite; elsewhere nothing is done). An alert another transaction opened
    meanwhile is not inserted: None in its place, for raise_or_coalesce to count the repeat
    on it."""
    insert = _upsert(session)
    if not decisions or insert is None:
        return [None] * len(decisions)
    rows = [_new_values(decision, now) for decision in decisions]
    statement = (
        insert(AlertRow)
        .on_conflict_do_nothing(index_elements=["device_id", "type"], index_where=text(_OPEN_SQL))
        .returning(AlertRow.id, AlertRow.device_id, AlertRow.type)
    )
    with session.no_autoflush:
        # Many parameter sets: SQLAlchemy sends them as few multi-row INSERTs (its
        # "insertmanyvalues"), compiled once.
        result = session.connection().execute(statement, rows)
        inserted = {(d, t): i for i, d, t in result}
    changes: list[AlertChange | None] = []
    for decision, values in zip(decisions, rows, strict=True):
        alert_id = inserted.get((decision.device_id, decision.type.value))
        if alert_id is None:
            changes.append(None)
            continue
        changes.append(_created(session, _attached(alert_id, values), decision, now))
    return changes


def _upsert(session: Session) -> Any:
    """The dialect's INSERT with ON CONFLICT, where it has one (PostgreSQL, SQLite ≥ 3.35 with
    RETURNING); None elsewhere."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    return None


def _new_values(decision: RaiseAlert, now: datetime) -> dict[str, Any]:
    return {
        "device_id": decision.device_id,
        "elder_id": decision.elder_id,
        "type": decision.type.value,
        "category": decision.category.value,
        "priority": decision.priority.value,
        "priority_rank": decision.priority.rank,
        "status": AlertStatus.NEW.value,
        "count": 1,
        "created_at": now,
        "updated_at": now,
        "occurred_at": decision.occurred_at,
        "last_occurred_at": decision.occurred_at,
        "location": dict(decision.location) if decision.location else None,
        "attributes": dict(decision.attributes),
        "last_seq": decision.seq,
        "claimed_at": None,
        "claimed_by": None,
        "resolved_at": None,
        "outcome": None,
        "queued_at": now,
        "escalated_at": None,
        "reminded_at": None,
        "reminders": 0,
        "contacts_notified_at": None,
    }


def _attached(alert_id: int, values: Mapping[str, Any]) -> AlertRow:
    """The ORM row of an alert just inserted by a Core statement, in the session without a
    query: every column is set, so nothing is loaded again."""
    row = AlertRow(id=alert_id, **values)
    make_transient_to_detached(row)
    return row


def raise_or_coalesce(session: Session, decision: RaiseAlert, now: datetime) -> AlertChange:
    """Open the alert, or count the repeat on the open alert of the same device and type."""
    change = _coalesce(session, decision, now)
    if change is not None:
        return change
    if _upsert(session) is not None:
        return _insert_or_coalesce(session, decision, now)
    values: dict[str, Any] = dict(
        device_id=decision.device_id,
        elder_id=decision.elder_id,
        type=decision.type.value,
        category=decision.category.value,
        priority=decision.priority.value,
        priority_rank=decision.priority.rank,
        status=AlertStatus.NEW.value,
        count=1,
        created_at=now,
        updated_at=now,
        occurred_at=decision.occurred_at,
        last_occurred_at=decision.occurred_at,
        location=dict(decision.location) if decision.location else None,
        attributes=dict(decision.attributes),
        last_seq=decision.seq,
    )
    row = AlertRow(**values)
    try:
        # A savepoint: if another process opened the same alert first, coalesce into it.
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        change = _coalesce(session, decision, now, use_locked=False)
        if change is None:
            raise
        return change
    return _created(session, row, decision, now)


def _insert_or_coalesce(session: Session, decision: RaiseAlert, now: datetime) -> AlertChange:
    """PostgreSQL and SQLite: one INSERT … ON CONFLICT DO NOTHING, rather than a savepoint and a
    flush around it (three round trips, and SQLAlchemy's unit of work). If another transaction
    holds an open alert of the device and type, it waits for that one to end (SQLite: one
    writer at a time), then inserts nothing: the repeat is counted on that alert."""
    row = _new_values(decision, now)
    # Core, and one statement compiled once: the timeline rows so far go in one flush, at
    # the commit.
    alert_id = session.connection().execute(_open_one(_dialect(session)), row).scalar()
    if alert_id is None:
        change = _coalesce(session, decision, now, use_locked=False)
        if change is None:  # opened and closed again meanwhile: unlikely; try once more
            return raise_or_coalesce(session, decision, now)
        return change
    return _created(session, _attached(alert_id, row), decision, now)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@functools.cache
def _open_one(dialect: str) -> Any:
    """INSERT one open alert unless the device has one of its type open; RETURNING its id."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_ALERTS_TABLE)
        .on_conflict_do_nothing(index_elements=["device_id", "type"], index_where=text(_OPEN_SQL))
        .returning(_ALERTS_TABLE.c.id)
    )


_ALERTS_TABLE = cast(Table, AlertRow.__table__)
_ALERTS = _ALERTS_TABLE.c
# Close an alert if it is still open: a dispatcher may have resolved it a moment ago. The open
# statuses written out (text), not an IN list SQLAlchemy expands again at every execution.
_CLOSE = (
    update(_ALERTS_TABLE)
    .where(_ALERTS.id == bindparam("alert_id"), text(_OPEN_SQL))
    .values(status=bindparam("to_status"), updated_at=bindparam("at"), resolved_at=bindparam("at"))
)


def _created(session: Session, row: AlertRow, decision: RaiseAlert, now: datetime) -> AlertChange:
    session.add(row)
    session.info.setdefault(_LOCKED_ROWS, {})[(row.device_id, row.type)] = row
    _log(session, row.id, now, "created", f"device:{decision.device_id}", decision.attributes)
    return AlertChange(
        alert_id=row.id, kind=ChangeKind.CREATED, device_id=row.device_id, type=row.type
    )


def _coalesce(
    session: Session, decision: RaiseAlert, now: datetime, *, use_locked: bool = True
) -> AlertChange | None:
    row = _open_row(session, decision.device_id, decision.type, use_locked=use_locked)
    if row is None:
        return None
    if not decision.counted or (decision.seq is not None and decision.seq == row.last_seq):
        return AlertChange(
            alert_id=row.id, kind=ChangeKind.DUPLICATE, device_id=row.device_id, type=row.type
        )
    row.count += 1
    row.last_seq = decision.seq
    row.updated_at = now
    row.last_occurred_at = max(row.last_occurred_at, decision.occurred_at)
    _log(session, row.id, now, "coalesced", f"device:{decision.device_id}", {"count": row.count})
    return AlertChange(
        alert_id=row.id, kind=ChangeKind.UPDATED, device_id=row.device_id, type=row.type
    )


def _log(
    session: Session, alert_id: int, at: datetime, action: str, actor: str, detail: Any
) -> None:
    values = {"alert_id": alert_id, "at": at, "action": action, "actor": actor}
    pending: list[dict[str, Any]] | None = session.info.get(_PENDING_TIMELINE)
    if pending is not None:
        pending.append(values | {"detail": dict(detail)})
    else:
        session.add(AlertEventRow(**values, detail=dict(detail)))


# The timeline rows logged within batched_timeline, in the session's info.
_PENDING_TIMELINE = "anxin.pending_timeline"
_TIMELINE_INSERT = insert(cast(Table, AlertEventRow.__table__))


@contextmanager
def batched_timeline(session: Session) -> Iterator[None]:
    """The timeline rows the alert writes within log go in as they end, in one INSERT of many
    parameter sets, in the order logged: the ORM's flush inserts them one by one, each
    RETURNING its id (SQLite cannot return many rows' ids in order). For writes that do not
    read the timeline they log (ingest's write_alerts). Nothing goes in if they fail."""
    pending: list[dict[str, Any]] = []
    session.info[_PENDING_TIMELINE] = pending
    try:
        yield
    finally:
        del session.info[_PENDING_TIMELINE]
    if pending:
        session.connection().execute(_TIMELINE_INSERT, pending)


class StatusFilter(StrEnum):
    OPEN = "open"
    # The open alerts handed up: a supervisor's list.
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    ALL = "all"


@dataclass(frozen=True, kw_only=True, slots=True)
class QueuePage:
    alerts: Sequence[AlertRow]
    next_cursor: str | None


class InvalidCursorError(ValueError):
    """The cursor was not one this store handed out."""


def list_queue(
    session: Session,
    *,
    status: StatusFilter = StatusFilter.OPEN,
    priority: Priority | None = None,
    category: Category | None = None,
    limit: int = 50,
    cursor: str | None = None,
    communities: Sequence[str] = (),
    created_since: datetime | None = None,
    elder_id: int | None = None,
) -> QueuePage:
    """The queue: most urgent first, then oldest first; keyset pagination by ``cursor``.

    ``communities``: tier paths the elder must live within (a user's scope, a filter); an
    alert with no known elder (an unregistered device) then does not show.
    """
    query = select(AlertRow)
    prefixes = [p for p in communities if p]
    if prefixes:
        query = query.join(ElderRow, ElderRow.id == AlertRow.elder_id)
        for prefix in prefixes:
            query = query.where(within_community(prefix))
    if status is StatusFilter.OPEN:
        query = query.where(AlertRow.status.in_(_OPEN))
    elif status is StatusFilter.ESCALATED:
        query = query.where(AlertRow.status == AlertStatus.ESCALATED.value)
    elif status is StatusFilter.RESOLVED:
        query = query.where(AlertRow.status.not_in(_OPEN))
    if priority is not None:
        query = query.where(AlertRow.priority == priority.value)
    if category is not None:
        query = query.where(AlertRow.category == category.value)
    if created_since is not None:
        query = query.where(AlertRow.created_at >= created_since)
    if elder_id is not None:
        query = query.where(AlertRow.elder_id == elder_id)
    if cursor is not None:
        rank, created_at, alert_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                AlertRow.priority_rank > rank,
                and_(AlertRow.priority_rank == rank, AlertRow.created_at > created_at),
                and_(
                    AlertRow.priority_rank == rank,
                    AlertRow.created_at == created_at,
                    AlertRow.id > alert_id,
                ),
            )
        )
    query = query.order_by(AlertRow.priority_rank, AlertRow.created_at, AlertRow.id)
    rows = list(session.scalars(query.limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return QueuePage(alerts=rows[:limit], next_cursor=next_cursor)


def get_alert(session: Session, alert_id: int) -> AlertRow | None:
    return session.get(AlertRow, alert_id)


def get_timeline(session: Session, alert_id: int) -> list[AlertEventRow]:
    return list(
        session.scalars(
            select(AlertEventRow)
            .where(AlertEventRow.alert_id == alert_id)
            .order_by(AlertEventRow.id)
        )
    )


# Reading the timeline as a log: every change to any alert, in the order of its row ids. The
# SSE stream (api/) follows it, so a change made by any process reaches every dispatcher.


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineItem:
    event: AlertEventRow
    alert: AlertRow
    # The community of the alert's elder (None: no elder), for scope checks.
    community: str | None


def latest_event_id(session: Session) -> int:
    """The newest timeline row's id; 0 when there is none."""
    return int(session.scalar(select(func.max(AlertEventRow.id))) or 0)


def timeline_ids_between(session: Session, low: int, high: int) -> set[int]:
    """The ids of the timeline rows committed with ``low < id <= high``."""
    rows = session.scalars(
        select(AlertEventRow.id).where(AlertEventRow.id > low, AlertEventRow.id <= high)
    )
    return set(rows)


def timeline_after(
    session: Session, after_id: int, *, limit: int, also: Sequence[int] = ()
) -> list[TimelineItem]:
    """Timeline rows with an id above ``after_id`` (and those of ``also``), oldest first, each
    with its alert as it is now."""
    wanted = AlertEventRow.id > after_id
    if also:
        wanted = or_(wanted, AlertEventRow.id.in_(sorted(also)))
    rows = session.execute(
        select(AlertEventRow, AlertRow, ElderRow.community)
        .join(AlertRow, AlertRow.id == AlertEventRow.alert_id)
        .outerjoin(ElderRow, ElderRow.id == AlertRow.elder_id)
        .where(wanted)
        .order_by(AlertEventRow.id)
        .limit(limit)
    )
    return [TimelineItem(event=e, alert=a, community=c) for e, a, c in rows]


def skip_to_newest(session: Session, after_id: int, most: int) -> int | None:
    """If more than ``most`` timeline rows follow ``after_id``: the id after which only the
    newest ``most`` follow. None when there are ``most`` or fewer."""
    return session.scalar(
        select(AlertEventRow.id)
        .where(AlertEventRow.id > after_id)
        .order_by(AlertEventRow.id.desc())
        .offset(most)
        .limit(1)
    )


def _encode_cursor(row: AlertRow) -> str:
    raw = json.dumps([row.priority_rank, row.created_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        rank, created_at, alert_id = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(created_at)
        if not isinstance(rank, int) or not isinstance(alert_id, int) or when.tzinfo is None:
            raise TypeError
        if not (0 <= rank < 100 and 0 <= alert_id < 2**31):  # SQL INTEGER: no overflow
            raise TypeError
        return rank, when.astimezone(UTC), alert_id
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError("invalid cursor") from exc


def open_alerts_of(
    session: Session, device_ids: Sequence[str]
) -> dict[str, dict[AlertType, OpenAlert]]:
    """The open alerts of these devices, by device and type: the engine's view of them."""
    found: dict[str, dict[AlertType, OpenAlert]] = {}
    if not device_ids:
        return found
    rows = session.execute(
        select(AlertRow.device_id, AlertRow.type, AlertRow.occurred_at).where(
            AlertRow.device_id.in_(sorted(set(device_ids))), AlertRow.status.in_(_OPEN)
        )
    )
    for device_id, kind, since in rows:
        alert = AlertType(kind)
        found.setdefault(device_id, {})[alert] = OpenAlert(type=alert, since=since)
    return found


def close_open(
    session: Session,
    *,
    device_id: str,
    alert: AlertType,
    status: AlertStatus,
    now: datetime,
    actor: str,
    reason: str,
) -> AlertChange | None:
    """Resolve (or cancel) the device's open alert of this type, by the system or device."""
    row = _open_row(session, device_id, alert)
    if row is None:
        return None
    # Conditional, so a dispatcher who resolved it a moment ago is not overwritten (SQLite
    # ignores FOR UPDATE: the read above does not hold the row).
    # Core, compiled once, without a flush first (the timeline rows so far go in one flush,
    # at the commit) or a fetch of the row again: the row in hand is told what was written.
    closed = session.connection().execute(
        _CLOSE, {"alert_id": row.id, "to_status": status.value, "at": now}
    )
    if closed.rowcount != 1:
        return None
    for name, value in (("status", status.value), ("updated_at", now), ("resolved_at", now)):
        set_committed_value(row, name, value)
    action = "auto_resolved" if status is AlertStatus.RESOLVED else "cancelled"
    _log(session, row.id, now, action, actor, {"reason": reason})
    return AlertChange(alert_id=row.id, kind=ChangeKind.UPDATED, device_id=device_id, type=row.type)


def note_open(
    session: Session,
    *,
    device_id: str,
    alert: AlertType,
    now: datetime,
    actor: str,
    action: str,
    detail: Mapping[str, Any],
) -> AlertChange | None:
    """Add a line to the timeline of the device's open alert of this type."""
    row = _open_row(session, device_id, alert)
    if row is None:
        return None
    row.updated_at = now
    _log(session, row.id, now, action, actor, detail)
    return AlertChange(alert_id=row.id, kind=ChangeKind.UPDATED, device_id=device_id, type=row.type)


def _open_row(
    session: Session, device_id: str, alert: AlertType, *, use_locked: bool = True
) -> AlertRow | None:
    if use_locked and device_id in session.info.get(_LOCKED_DEVICES, ()):
        row: AlertRow | None = session.info[_LOCKED_ROWS].get((device_id, alert.value))
        # Read and locked at the batch's start: None, or closed since in this transaction,
        # is no open alert (one another process opens meanwhile, the insert meets).
        if row is None or row.status not in _OPEN:
            return None
        return row
    return session.scalars(
        select(AlertRow)
        .where(
            AlertRow.device_id == device_id,
            AlertRow.type == alert.value,
            AlertRow.status.in_(_OPEN),
        )
        .with_for_update()
    ).one_or_none()


# Welfare alerts are the elder's: the movement that ends an inactivity alert may come from
# another of the elder's devices than the one the alert was raised on.
ELDER_ALERTS = frozenset(
    {AlertType.INACTIVITY, AlertType.CHECKIN_MISSED, AlertType.BED_NOT_VACATED}
)


def open_elder_alerts(session: Session, elder_ids: Sequence[int]) -> dict[int, set[AlertType]]:
    """The open per-elder welfare alerts of these elders."""
    found: dict[int, set[AlertType]] = {}
    ids = sorted(set(elder_ids))
    if not ids:
        return found
    rows = session.execute(
        select(AlertRow.elder_id, AlertRow.type).where(
            AlertRow.elder_id.in_(ids),
            AlertRow.type.in_(sorted(a.value for a in ELDER_ALERTS)),
            AlertRow.status.in_(_OPEN),
        )
    )
    for elder_id, kind in rows:
        if elder_id is not None:
            found.setdefault(elder_id, set()).add(AlertType(kind))
    return found


def open_elder_alert(session: Session, elder_id: int, alert: AlertType) -> AlertRow | None:
    return session.scalars(
        select(AlertRow)
        .where(
            AlertRow.elder_id == elder_id,
            AlertRow.type == alert.value,
            AlertRow.status.in_(_OPEN),
        )
        .order_by(AlertRow.id)
        .limit(1)
    ).one_or_none()


def close_elder_alert(
    session: Session, *, elder_id: int, alert: AlertType, now: datetime, reason: str
) -> AlertChange | None:
    """Resolve the elder's open welfare alert of this type, by the system."""
    row = open_elder_alert(session, elder_id, alert)
    if row is None:
        return None
    return close_open(
        session,
        device_id=row.device_id,
        alert=alert,
        status=AlertStatus.RESOLVED,
        now=now,
        actor="system",
        reason=reason,
    )
