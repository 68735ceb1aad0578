"""The notification outbox: notifications written in the transaction that decided them,
delivered afterwards by a worker, with retries and a bounded number of attempts.

The escalation pass only inserts rows (no network on the scheduler's path, nothing lost on a
crash: a notification exists exactly when the escalation that caused it was committed). The
worker takes due rows one at a time: it leases the row (a conditional UPDATE, so two workers
cannot both send it), calls the channel's notifier outside any transaction, and records the
result: ``sent`` with a ``notified`` line on each alert's timeline; or another attempt later
(waiting ``backoff_s``, doubled each time, at most ``max_backoff_s``); or, after
``max_attempts`` or a permanent refusal, ``failed`` with ``notify_failed`` on the timeline.
Delivery is at least once: a crash after sending and before recording sends again, with the
same delivery id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import structlog
from sqlalchemy import (
    JSON,
    CursorResult,
    Index,
    Integer,
    SmallInteger,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from alerting.escalation_rules import NotifyRule
from alerting.feed import AlertFeed
from alerting.metrics import NOTIFICATIONS, OUTBOX_PENDING
from alerting.notifiers import (
    Channel,
    DeliveryError,
    Kind,
    Notification,
    Notifier,
    PermanentDeliveryError,
)
from alerting.store import AlertChange, AlertEventRow, AlertRow, ChangeKind
from devices.clock import Clock
from devices.sql import Base, UtcDateTime

log = structlog.get_logger(__name__)

# Delivered or given-up rows are kept this long (their result is on the timelines), then
# deleted, so the table stays bounded.
KEPT = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)
NOTIFIED = "notified"
NOTIFY_FAILED = "notify_failed"
SYSTEM = "system"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxRow(Base):
    __tablename__ = "notification_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    # The alerts it is about (one, or a digest's several): their timelines get the result.
    alert_ids: Mapped[list[int]] = mapped_column(JSON)
    # What the notifier sends (contacts: names and phones, so never logged).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Shown on the timeline with the result (contacts: position and relation, no names).
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(8), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_notification_outbox_due", "status", "next_attempt_at"),)


def enqueue(
    session: Session,
    *,
    channel: Channel,
    kind: Kind,
    alert_ids: Sequence[int],
    payload: Mapping[str, Any],
    now: datetime,
    summary: Mapping[str, Any] | None = None,
) -> OutboxRow:
    """A notification to deliver, in the caller's transaction."""
    row = OutboxRow(
        created_at=now,
        channel=channel.value,
        kind=kind.value,
        alert_ids=list(alert_ids),
        payload={**payload, "alert_ids": list(alert_ids)},
        summary=dict(summary or {}),
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(row)
    return row


@dataclass(frozen=True, kw_only=True, slots=True)
class _Due:
    id: int
    channel: str
    kind: str
    alert_ids: list[int]
    payload: dict[str, Any]
    summary: dict[str, Any]
    attempts: int


class OutboxWorker:
    """Delivers due notifications. One ``drain`` is synchronous (run it in a thread)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        notifiers: Mapping[Channel, Notifier],
        rule: NotifyRule,
        clock: Clock,
        feed: AlertFeed | None = None,
        batch: int = 50,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self._sessions, self._notifiers, self._rule = sessions, dict(notifiers), rule
        self._clock, self._feed, self._batch, self._lease = clock, feed, batch, lease
        self._pruned_at: datetime | None = None

    def drain(self) -> list[AlertChange]:
        """Try each due notification once (at most ``batch``); the alerts whose timeline
        changed. A channel that failed is not tried again in the same drain."""
        now = self._clock()
        with self._sessions.begin() as session:
            due = [
                _Due(
                    id=r.id,
                    channel=r.channel,
                    kind=r.kind,
                    alert_ids=list(r.alert_ids),
                    payload=dict(r.payload),
                    summary=dict(r.summary),
                    attempts=r.attempts,
                )
                for r in session.scalars(
                    select(OutboxRow)
                    .where(
                        OutboxRow.status == DeliveryStatus.PENDING.value,
                        OutboxRow.next_attempt_at <= now,
                    )
                    .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                    .limit(self._batch)
                )
            ]
        changes: list[AlertChange] = []
        failing: set[str] = set()
        for item in due:
            if item.channel in failing:
                continue
            if not self._lease_row(item, now):
                continue  # another worker took it
            ok = self._deliver(item, changes)
            if not ok:
                failing.add(item.channel)
        self._count_pending()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self.prune(now)
        return changes

    def prune(self, now: datetime) -> int:
        """Delete rows done (sent or failed) more than ``KEPT`` ago; how many."""
        self._pruned_at = now
        with self._sessions.begin() as session:
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    delete(OutboxRow).where(
                        OutboxRow.status != DeliveryStatus.PENDING.value,
                        OutboxRow.done_at < now - KEPT,
                    )
                ),
            )
        return result.rowcount

    async def run(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                changes = await asyncio.to_thread(self.drain)
            except Exception:  # the database away: log, wait, go on (the rows are safe)
                log.exception("outbox.drain_failed")
                changes = []
            if changes and self._feed is not None:
                self._feed.publish(changes)
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except TimeoutError:
                continue

    def _lease_row(self, item: _Due, now: datetime) -> bool:
        with self._sessions.begin() as session:
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == item.id,
                        OutboxRow.status == DeliveryStatus.PENDING.value,
                        # Still due: another worker's lease moves it into the future.
                        OutboxRow.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=now + self._lease)
                    .execution_options(synchronize_session=False)
                ),
            )
            return result.rowcount == 1

    def _deliver(self, item: _Due, changes: list[AlertChange]) -> bool:
        channel = Channel(item.channel)
        notifier = self._notifiers.get(channel)
        attempts = item.attempts + 1
        error: str | None = None
        final = False
        if notifier is None:
            error, final = "no notifier configured for this channel", True
        else:
            notification = Notification(
                delivery_id=item.id, channel=channel, kind=Kind(item.kind), payload=item.payload
            )
            try:
                notifier.notify(notification)
            except PermanentDeliveryError as exc:
                error, final = describe_failure(exc), True
            except Exception as exc:  # any failure of the port is retried, within the bound
                error = describe_failure(exc)
                final = attempts >= self._rule.max_attempts
        done = self._clock()
        with self._sessions.begin() as session:
            values: dict[str, Any] = {"attempts": attempts, "last_error": error}
            if error is None:
                values |= {"status": DeliveryStatus.SENT.value, "done_at": done}
            elif final:
                values |= {"status": DeliveryStatus.FAILED.value, "done_at": done}
            else:
                values["next_attempt_at"] = done + self._backoff(attempts)
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == item.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if error is None or final:
                changes.extend(self._record(session, item, attempts, error, done))
        result = "sent" if error is None else ("failed" if final else "retry")
        NOTIFICATIONS.labels(channel=channel.value, result=result).inc()
        log_fn = log.info if error is None else log.warning
        log_fn(
            f"outbox.{result}",
            delivery_id=item.id,
            channel=channel.value,
            kind=item.kind,
            alert_ids=item.alert_ids,
            attempts=attempts,
            error=error,
        )
        return error is None

    def _backoff(self, attempts: int) -> timedelta:
        seconds = self._rule.backoff_s * 2 ** (attempts - 1)
        return timedelta(seconds=min(seconds, self._rule.max_backoff_s))

    def _record(
        self, session: Session, item: _Due, attempts: int, error: str | None, now: datetime
    ) -> list[AlertChange]:
        detail: dict[str, Any] = {
            "channel": item.channel,
            "kind": item.kind,
            "delivery": item.id,
            "attempts": attempts,
            **item.summary,
        }
        if error is not None:
            detail["error"] = error
        changes = []
        for alert_id in item.alert_ids:
            alert = session.get(AlertRow, alert_id)
            if alert is None:
                continue
            session.add(
                AlertEventRow(
                    alert_id=alert_id,
                    at=now,
                    action=NOTIFIED if error is None else NOTIFY_FAILED,
                    actor=SYSTEM,
                    detail=detail,
                )
            )
            changes.append(
                AlertChange(
                    alert_id=alert_id,
                    kind=ChangeKind.UPDATED,
                    device_id=alert.device_id,
                    type=alert.type,
                )
            )
        return changes

    def _count_pending(self) -> None:
        with self._sessions() as session:
            pending = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.status == DeliveryStatus.PENDING.value)
            )
        OUTBOX_PENDING.set(pending or 0)


def describe_failure(exc: Exception) -> str:
    """What the log and the timeline say of a failure. A DeliveryError's message is written for
    that (``HTTP 503``); any other exception, from a gateway's own code, may quote a phone
    number or a name, so only its class is kept."""
    if isinstance(exc, DeliveryError) and str(exc):
        return str(exc)[:200]
    return type(exc).__name__
