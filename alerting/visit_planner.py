"""The scheduler's visit pass: a welfare alert nobody closed becomes a visit, routine visits
per category of elder come due, and an overdue visit goes to the supervisors.

As the escalation pass does, it derives everything from stored facts (open alerts and their
age, each elder's last routine visit, visits' due times and ``escalated_at``), so a restart
neither loses nor repeats one: a welfare visit is made once per alert, a routine one only while
the elder has none open, an overdue one is escalated by a conditional UPDATE of
``escalated_at``. Supervisors hear of an overdue visit through the outbox, as of an unclaimed
alert; the notice carries no personal data beyond the community.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from alerting import visit_store
from alerting.model import OPEN_STATUSES
from alerting.notifiers import Channel, Kind
from alerting.outbox import SYSTEM, enqueue
from alerting.store import AlertRow
from alerting.visit_rules import RoutineVisits, VisitRules
from alerting.visit_store import VisitRow
from alerting.visits import VisitReason
from devices.elders import ElderRow

log = structlog.get_logger(__name__)

_OPEN_ALERTS = sorted(s.value for s in OPEN_STATUSES)
# Per pass: the rest waits for the next pass (bounded everything).
BATCH = 200
# Routine schedules change by the week: looking once an hour is plenty.
ROUTINE_EVERY = timedelta(hours=1)


class VisitPlanner:
    def __init__(self, rules: VisitRules, *, channels: frozenset[Channel] = frozenset()) -> None:
        self._rules, self._channels = rules, channels
        self._routine_checked: datetime | None = None

    def step(self, session: Session, now: datetime) -> int:
        """Make and escalate what is due at ``now``, in the caller's transaction; how many
        visits were made or escalated."""
        done = self._from_welfare_alerts(session, now)
        if self._routine_checked is None or now - self._routine_checked >= ROUTINE_EVERY:
            done += sum(self._routine(session, schedule, now) for schedule in self._rules.routine)
            self._routine_checked = now
        return done + self._escalate_overdue(session, now)

    def _from_welfare_alerts(self, session: Session, now: datetime) -> int:
        rules = self._rules
        if rules.welfare_after_s == 0 or not rules.welfare_types:
            return 0
        cutoff = now - timedelta(seconds=rules.welfare_after_s)
        already = exists().where(VisitRow.alert_id == AlertRow.id)
        alerts = session.scalars(
            select(AlertRow)
            .where(
                AlertRow.status.in_(_OPEN_ALERTS),
                AlertRow.type.in_(sorted(t.value for t in rules.welfare_types)),
                AlertRow.created_at <= cutoff,
                AlertRow.elder_id.is_not(None),
                ~already,
            )
            .order_by(AlertRow.created_at, AlertRow.id)
            .limit(BATCH)
        )
        made = 0
        for alert in alerts:
            if session.get(ElderRow, alert.elder_id) is None:
                continue  # an elder deleted since: nobody's door to knock on
            assert alert.elder_id is not None  # noqa: S101 - the query's condition
            visit = visit_store.request_visit(
                session,
                elder_id=alert.elder_id,
                reason=VisitReason.WELFARE,
                due_at=now + timedelta(hours=rules.welfare_due_h),
                actor=SYSTEM,
                now=now,
                alert_id=alert.id,
            )
            log.info("visits.from_welfare_alert", visit_id=visit.id, alert_id=alert.id)
            made += 1
        return made

    def _routine(self, session: Session, schedule: RoutineVisits, now: datetime) -> int:
        """Each elder in all the schedule's categories without an open routine visit gets one
        when the last one's due time plus the period is within the lead time."""
        wanted = {c.value for c in schedule.categories}
        every = timedelta(days=schedule.every_days)
        lead = timedelta(hours=self._rules.routine_lead_h)
        last_due = {
            elder_id: due
            for elder_id, due in session.execute(
                select(VisitRow.elder_id, func.max(VisitRow.due_at))
                .where(VisitRow.reason == VisitReason.ROUTINE.value)
                .group_by(VisitRow.elder_id)
            )
        }
        made = 0
        # JSON lists filter portably in Python (as the elders list does).
        for elder_id, categories in session.execute(select(ElderRow.id, ElderRow.categories)):
            if not wanted <= set(categories or ()):
                continue
            last = last_due.get(elder_id)
            due = now + lead if last is None else last + every
            if due - lead > now:
                continue
            if visit_store.open_visit_of_elder(session, elder_id, VisitReason.ROUTINE):
                continue  # the last one is not made yet: no second on top
            visit_store.request_visit(
                session,
                elder_id=elder_id,
                reason=VisitReason.ROUTINE,
                due_at=max(due, now),
                actor=SYSTEM,
                now=now,
            )
            made += 1
            if made >= BATCH:
                break
        if made:
            log.info("visits.routine", made=made, every_days=schedule.every_days)
        return made

    def _escalate_overdue(self, session: Session, now: datetime) -> int:
        if self._rules.overdue_after_s == 0:
            return 0
        late = now - timedelta(seconds=self._rules.overdue_after_s)
        escalated = 0
        for visit in visit_store.overdue_unescalated(session, late, limit=BATCH):
            overdue_s = int((now - visit.due_at).total_seconds())
            if not visit_store.mark_escalated(
                session, visit, now=now, detail={"overdue_s": overdue_s}
            ):
                continue
            escalated += 1
            if Channel.SUPERVISORS in self._channels:
                elder = session.get(ElderRow, visit.elder_id)
                enqueue(
                    session,
                    channel=Channel.SUPERVISORS,
                    kind=Kind.VISIT_OVERDUE,
                    alert_ids=[visit.alert_id] if visit.alert_id is not None else [],
                    payload={
                        "visit": {
                            "id": visit.id,
                            "reason": visit.reason,
                            "status": visit.status,
                            "assignee": visit.assignee,
                            "due_at": visit.due_at.isoformat(),
                            "community": elder.community if elder is not None else None,
                        },
                        "text": f"上门巡访 {visit.id} 已逾期 {overdue_s // 60} 分钟，请安排。",
                    },
                    summary={"visit_id": visit.id},
                    now=now,
                )
            log.warning("visits.overdue_escalated", visit_id=visit.id, overdue_s=overdue_s)
        return escalated
