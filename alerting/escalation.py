"""The escalation pass: unclaimed alerts move up to the supervisors, who are reminded until
someone claims them, and the elder's contacts are told. The scheduler calls ``step``.

Every deadline is derived from the alert's stored fields (``queued_at``, ``status``,
``reminded_at``, ``reminders``, ``contacts_notified_at``) and the rules, and each pass asks
the database for the alerts due as an indexed range (``ix_alerts_unclaimed``,
``ix_alerts_reminded``): no list of deadlines to lose or rebuild, no scan of all alerts, and a
restart neither loses nor repeats one. Each step is a conditional UPDATE that re-checks what
made it due, so two schedulers, or a dispatcher's claim at the same moment, cannot make it
happen twice: the claim wins or comes after (a claim works on an escalated alert).

Notifications go into the outbox (alerting/outbox.py) in the same transaction; the outbox
worker delivers them. The outage guard: an alert's claim deadline is not moved by the
platform's outages (see docs/alert-rules.md § Escalation for why); an escalation that comes
late is marked as a catch-up, and more than ``notify.digest_over`` supervisor notices in one
pass become one digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from alerting import escalation_policy as policy
from alerting.escalation_rules import EscalationRule, NotifyRule
from alerting.metrics import ESCALATIONS
from alerting.model import AlertStatus, AlertType, Priority
from alerting.notifiers import Channel, Kind
from alerting.outbox import SYSTEM, enqueue
from alerting.store import AlertChange, AlertEventRow, AlertRow, ChangeKind
from devices.elders import ElderRow

log = structlog.get_logger(__name__)

ESCALATED = "escalated"
REMINDER = "escalation_reminder"
CONTACTS_NOTIFYING = "contacts_notifying"
CONTACTS_NOT_NOTIFIED = "contacts_not_notified"

_NEW, _ESCALATED = AlertStatus.NEW.value, AlertStatus.ESCALATED.value


@dataclass(frozen=True, kw_only=True, slots=True)
class _Notice:
    """An escalation or reminder the supervisors hear of."""

    alert: AlertRow
    kind: Kind
    waited_s: int
    late: bool
    reminder: int = 0


class Escalator:
    def __init__(
        self,
        *,
        escalation: EscalationRule,
        notify: NotifyRule,
        channels: frozenset[Channel] = frozenset(),
    ) -> None:
        """``channels``: those a notifier is configured for; nothing is queued for the others."""
        self._rule, self._notify, self._channels = escalation, notify, channels

    def step(self, session: Session, now: datetime) -> list[AlertChange]:
        """Escalate, remind and notify what is due at ``now``, in the caller's transaction."""
        notices = self._escalate(session, now) + self._remind(session, now)
        self._tell_supervisors(session, notices, now)
        contacted = self._notify_contacts(session, now)
        touched = {n.alert.id: n.alert for n in notices} | {a.id: a for a in contacted}
        return [
            AlertChange(alert_id=a.id, kind=ChangeKind.UPDATED, device_id=a.device_id, type=a.type)
            for a in touched.values()
        ]

    # Escalation: unclaimed past the claim deadline.

    def _escalate(self, session: Session, now: datetime) -> list[_Notice]:
        notices: list[_Notice] = []
        for priority in policy.escalating_priorities(self._rule):
            level = self._rule.level(priority)
            room = self._rule.max_per_pass - len(notices)
            if room <= 0:
                break
            due = session.scalars(
                select(AlertRow)
                .where(
                    AlertRow.status == _NEW,
                    AlertRow.priority_rank == priority.rank,
                    AlertRow.queued_at <= policy.cutoff(now, level.claim_within),
                )
                .order_by(AlertRow.queued_at, AlertRow.id)
                .limit(room)
                .execution_options(populate_existing=True)
            ).all()
            for row in due:
                deadline = policy.claim_deadline(level, row.queued_at)
                assert deadline is not None  # noqa: S101 - only escalating levels are asked
                # Still due: not claimed, and not released again since (a release moves
                # queued_at to its time).
                won = _compare_and_set(
                    session,
                    [
                        AlertRow.id == row.id,
                        AlertRow.status == _NEW,
                        AlertRow.claimed_by.is_(None),
                        AlertRow.queued_at <= policy.cutoff(now, level.claim_within),
                    ],
                    status=_ESCALATED,
                    escalated_at=now,
                    reminded_at=now,
                    reminders=0,
                    updated_at=now,
                )
                if not won:
                    continue  # claimed (or escalated by another scheduler) meanwhile
                waited = policy.whole_seconds(now - row.queued_at)
                late = policy.is_catch_up(deadline, now)
                detail: dict[str, Any] = {
                    "from": _NEW,
                    "reason": f"not claimed within {level.claim_within_s} s",
                    "waited_s": waited,
                }
                if late:
                    detail["late_s"] = policy.whole_seconds(policy.late_by(deadline, now))
                _log(session, row.id, now, ESCALATED, detail)
                notices.append(_Notice(alert=row, kind=Kind.ESCALATED, waited_s=waited, late=late))
        if notices:
            ESCALATIONS.labels(kind="escalated").inc(len(notices))
            log.warning(
                "escalation.escalated",
                alert_ids=[n.alert.id for n in notices],
                catch_up=sum(n.late for n in notices),
            )
        return notices

    # Reminders: escalated, still unclaimed, every remind_every_s up to max_reminders.

    def _remind(self, session: Session, now: datetime) -> list[_Notice]:
        notices: list[_Notice] = []
        for priority in policy.escalating_priorities(self._rule):
            level = self._rule.level(priority)
            room = self._rule.max_per_pass - len(notices)
            if level.max_reminders == 0 or room <= 0:
                continue
            due = session.scalars(
                select(AlertRow)
                .where(
                    AlertRow.status == _ESCALATED,
                    AlertRow.priority_rank == priority.rank,
                    AlertRow.reminded_at <= policy.cutoff(now, level.remind_every),
                    AlertRow.claimed_by.is_(None),
                    AlertRow.reminders < level.max_reminders,
                )
                .order_by(AlertRow.reminded_at, AlertRow.id)
                .limit(room)
                .execution_options(populate_existing=True)
            ).all()
            for row in due:
                reminder = row.reminders + 1
                won = _compare_and_set(
                    session,
                    [
                        AlertRow.id == row.id,
                        AlertRow.status == _ESCALATED,
                        AlertRow.claimed_by.is_(None),
                        AlertRow.reminders == row.reminders,
                    ],
                    reminders=reminder,
                    reminded_at=now,
                    updated_at=now,
                )
                if not won:
                    continue
                waited = policy.whole_seconds(now - row.queued_at)
                detail: dict[str, Any] = {
                    "reminder": reminder,
                    "of": level.max_reminders,
                    "waited_s": waited,
                }
                _log(session, row.id, now, REMINDER, detail)
                notices.append(
                    _Notice(
                        alert=row,
                        kind=Kind.REMINDER,
                        waited_s=waited,
                        late=False,
                        reminder=reminder,
                    )
                )
        if notices:
            ESCALATIONS.labels(kind="reminder").inc(len(notices))
            log.warning("escalation.reminded", alert_ids=[n.alert.id for n in notices])
        return notices

    def _tell_supervisors(
        self, session: Session, notices: Sequence[_Notice], now: datetime
    ) -> None:
        if not notices or not self._notify.supervisors or Channel.SUPERVISORS not in self._channels:
            return
        if len(notices) > self._notify.digest_over:
            late = any(n.late for n in notices)
            enqueue(
                session,
                channel=Channel.SUPERVISORS,
                kind=Kind.DIGEST,
                alert_ids=[n.alert.id for n in notices],
                payload={
                    "count": len(notices),
                    "catch_up": late,
                    "alerts": [_supervisor_view(n) for n in notices],
                    "text": policy.digest_text(len(notices), late),
                },
                summary={"digest_of": len(notices)},
                now=now,
            )
            ESCALATIONS.labels(kind="digest").inc()
            log.warning("escalation.digest", alerts=len(notices), catch_up=late)
            return
        for notice in notices:
            alert = AlertType(notice.alert.type)
            priority = Priority(notice.alert.priority)
            text = (
                policy.escalated_text(notice.alert.id, alert, priority, notice.waited_s)
                if notice.kind is Kind.ESCALATED
                else policy.reminder_text(
                    notice.alert.id, alert, priority, notice.waited_s, notice.reminder
                )
            )
            enqueue(
                session,
                channel=Channel.SUPERVISORS,
                kind=notice.kind,
                alert_ids=[notice.alert.id],
                payload={"alert": _supervisor_view(notice), "text": text},
                now=now,
            )

    # The elder's contacts: once per alert, when it is still unclaimed after the delay.

    def _notify_contacts(self, session: Session, now: datetime) -> list[AlertRow]:
        contacts = self._notify.contacts
        if contacts.after_unclaimed_s == 0 or not (contacts.types or contacts.priorities):
            return []
        kinds = or_(
            AlertRow.type.in_(sorted(t.value for t in contacts.types)),
            AlertRow.priority.in_(sorted(p.value for p in contacts.priorities)),
        )
        unclaimed = [
            AlertRow.status.in_([_NEW, _ESCALATED]),
            AlertRow.claimed_by.is_(None),
            AlertRow.contacts_notified_at.is_(None),
        ]
        due = session.scalars(
            select(AlertRow)
            .where(
                *unclaimed,
                AlertRow.queued_at <= policy.cutoff(now, contacts.after_unclaimed),
                kinds,
            )
            .order_by(AlertRow.queued_at, AlertRow.id)
            .limit(self._rule.max_per_pass)
            .execution_options(populate_existing=True)
        ).all()
        done = []
        for row in due:
            if not _compare_and_set(
                session, [AlertRow.id == row.id, *unclaimed], contacts_notified_at=now
            ):
                continue
            done.append(row)
            self._queue_contacts(session, row, now)
        if done:
            ESCALATIONS.labels(kind="contacts").inc(len(done))
            log.warning("escalation.contacts", alert_ids=[a.id for a in done])
        return done

    def _queue_contacts(self, session: Session, alert: AlertRow, now: datetime) -> None:
        elder = session.get(ElderRow, alert.elder_id) if alert.elder_id is not None else None
        if elder is None:
            _log(session, alert.id, now, CONTACTS_NOT_NOTIFIED, {"reason": "no elder known"})
            return
        chosen = policy.first_contacts(
            [(c.position, c.name, c.phone, c.relation) for c in elder.contacts],
            self._notify.contacts.max_contacts,
        )
        if not chosen:
            _log(session, alert.id, now, CONTACTS_NOT_NOTIFIED, {"reason": "no contacts"})
            return
        if Channel.CONTACTS not in self._channels:
            _log(
                session,
                alert.id,
                now,
                CONTACTS_NOT_NOTIFIED,
                {"reason": "no contact channel configured", "contacts": len(chosen)},
            )
            return
        alert_type = AlertType(alert.type)
        text = policy.contact_text(elder.name, alert_type, alert.created_at)
        view = {
            "id": alert.id,
            "type": alert.type,
            "priority": alert.priority,
            "category": alert.category,
            "created_at": policy.iso(alert.created_at),
            "location": alert.location,
            "device_id": alert.device_id,
        }
        for order, (position, name, phone, relation) in enumerate(chosen, start=1):
            enqueue(
                session,
                channel=Channel.CONTACTS,
                kind=Kind.CONTACT,
                alert_ids=[alert.id],
                payload={
                    "alert": view,
                    "elder": {"id": elder.id, "name": elder.name},
                    "contact": {
                        "position": position,
                        "of": len(chosen),
                        "name": name,
                        "phone": phone,
                        "relation": relation,
                    },
                    "text": text,
                },
                # The timeline shows who by order and relation, not by name or number.
                summary={"order": order, "position": position, "relation": relation},
                now=now,
            )
        _log(
            session,
            alert.id,
            now,
            CONTACTS_NOTIFYING,
            {
                "contacts": len(chosen),
                "after_s": self._notify.contacts.after_unclaimed_s,
            },
        )


def _supervisor_view(notice: _Notice) -> dict[str, Any]:
    alert = notice.alert
    view: dict[str, Any] = {
        "id": alert.id,
        "type": alert.type,
        "priority": alert.priority,
        "category": alert.category,
        "device_id": alert.device_id,
        "elder_id": alert.elder_id,
        "created_at": policy.iso(alert.created_at),
        "queued_at": policy.iso(alert.queued_at),
        "waited_s": notice.waited_s,
        "catch_up": notice.late,
    }
    if notice.kind is Kind.REMINDER:
        view["reminder"] = notice.reminder
    return view


def _compare_and_set(session: Session, where: Sequence[Any], **values: Any) -> bool:
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(AlertRow)
            .where(*where)
            .values(**values)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


def _log(session: Session, alert_id: int, at: datetime, action: str, detail: Any) -> None:
    session.add(
        AlertEventRow(alert_id=alert_id, at=at, action=action, actor=SYSTEM, detail=dict(detail))
    )
