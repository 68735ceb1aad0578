"""The scheduler's welfare and periodic-test pass: fire the stored deadlines that are due.

Each pass reads what changed in the registry since the last one (elders edited, devices
added: an index range), starts watching who is newly watchable, and reads the deadlines due
(``due_at <= now``, an index range, at most ``batch``). Neither grows with the fleet: a quiet
fleet of any size costs the same three queries. Firing a deadline, raising its alert and
re-arming or disarming it happen in one transaction, so a restart neither loses nor repeats
one; the outage guard moves what the platform's own outage explains (alerting/welfare.py).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerting.deadlines import (
    DeadlineRow,
    arm_if_absent,
    as_deadline,
    deadlines_of,
    drop,
    due_deadlines,
    keep,
)
from alerting.decisions import DeadlineRule, SetDeadline
from alerting.engine import RulesEngine
from alerting.outages import Outages
from alerting.store import ELDER_ALERTS, AlertChange, open_elder_alert, raise_or_coalesce
from alerting.welfare import (
    checkin_due_from,
    fire,
    inactivity_due,
    replan,
)
from alerting.welfare_rules import WelfarePlan, can_check_in, watches_activity
from devices.catalogue import Catalogue
from devices.elders import ElderRow, welfare_key
from devices.registry import DeviceRow, DeviceStatus

log = structlog.get_logger(__name__)

FIRED = Counter("anxin_deadlines_fired_total", "Time-rule deadlines that raised an alert", ["rule"])
DUE = Gauge("anxin_deadlines_due", "Deadlines due at the last scheduler pass (at most its batch)")

# A subject that cannot be judged now (its sensors in maintenance) is looked at again then.
RECHECK = timedelta(hours=1)
CHUNK = 500  # ids per IN list
READ_ROWS = 1000  # rows fetched at a time by a watermark's read


class Verdict(Enum):
    FIRE = "fire"
    RECHECK = "recheck"
    DROP = "drop"


@dataclass(frozen=True, kw_only=True, slots=True)
class Elder:
    id: int
    categories: frozenset[str]
    plan: WelfarePlan


@dataclass(frozen=True, kw_only=True, slots=True)
class Device:
    id: str
    model: str
    status: str
    elder_id: int | None


class Watermark:
    """How far a pass has read a table by a time column. Each pass reads again the rows of the
    last ``lag`` before the mark, less those already read with the same time: a row whose
    transaction committed late (a long import) still has an earlier time, and many rows may
    share one."""

    def __init__(self, lag: timedelta = timedelta(minutes=2), *, fixed: bool = False) -> None:
        self._lag = lag
        # ``fixed``: a row's time never changes and rows are never deleted (devices.created_at),
        # so the rows of the lag are those already read plus any new: counting them tells
        # whether there is any, without reading them all again (after a bulk import, every
        # pass would read the whole import again until something newer is registered).
        self._fixed = fixed
        self._mark: datetime | None = None
        self._read: dict[object, datetime] = {}

    def since(self, session: Session, query: Any, column: Any) -> list[tuple[Any, Any]]:
        """(key, value) of the rows new since the last call; ``query`` selects key, time,
        value."""
        if self._mark is not None:
            query = query.where(column >= self._mark - self._lag)
            if self._fixed:
                rows = session.scalar(select(func.count()).select_from(query.subquery()))
                if rows == len(self._read):
                    return []
        fresh = []
        # Rows of one import share their time: one object of it kept, not one a row (48 bytes).
        times: dict[datetime, datetime] = {}
        # Streamed, as the scheduler reads devices (the whole registry on the first pass).
        for key, at, value in session.execute(query.execution_options(yield_per=READ_ROWS)):
            if self._read.get(key) == at:
                continue
            fresh.append((key, value))
            # Kept for the lag, the whole registry after a bulk import: ids shared, not copied.
            self._read[sys.intern(key) if isinstance(key, str) else key] = times.setdefault(at, at)
            self._mark = at if self._mark is None else max(self._mark, at)
        if self._mark is not None:
            horizon = self._mark - self._lag
            self._read = {k: at for k, at in self._read.items() if at >= horizon}
        return fresh


class WelfareWatch:
    def __init__(self, engine: RulesEngine, catalogue: Catalogue, batch: int = 500) -> None:
        self._engine, self._catalogue, self._batch = engine, catalogue, batch
        self._elders_mark = Watermark()
        self._devices_mark = Watermark(fixed=True)
        # Deadlines read (due or followed) in all passes: what the cost test counts.
        self.examined = 0

    @property
    def _zone(self) -> ZoneInfo:
        return self._engine.rules.welfare.zone

    def step(self, session: Session, now: datetime, outages: Outages) -> list[AlertChange]:
        self._follow(session, now)
        if outages.down_since is not None:
            return []  # nobody can tell a quiet elder from a deaf platform
        changes = []
        due = due_deadlines(session, now, self._batch)
        DUE.set(len(due))
        if len(due) == self._batch:
            # More are due than one pass takes: the rest, the next pass (earliest first).
            log.warning("scheduler.deadlines_backlog", batch=self._batch)
        for row in due:
            self.examined += 1
            change = self._fire(session, row, now, outages)
            if change is not None:
                changes.append(change)
        return changes

    # --- who is watched -----------------------------------------------------------------------

    def _follow(self, session: Session, now: datetime) -> None:
        """Start watching elders edited and devices added since the last pass (all of them
        on the first pass: the one time the whole registry is read)."""
        touched: set[int] = set()
        for elder_id, _ in self._elders_mark.since(
            session, select(ElderRow.id, ElderRow.updated_at, ElderRow.id), ElderRow.updated_at
        ):
            touched.add(int(elder_id))
        added: list[str] = []
        for device_id, owner in self._devices_mark.since(
            session,
            select(DeviceRow.id, DeviceRow.created_at, DeviceRow.elder_id),
            DeviceRow.created_at,
        ):
            added.append(str(device_id))
            if owner is not None:
                touched.add(int(owner))
        ids = sorted(touched)
        for start in range(0, len(ids), CHUNK):
            self._watch_elders(session, ids[start : start + CHUNK], now)
        for start in range(0, len(added), CHUNK):
            self._watch_tests(session, added[start : start + CHUNK], now)

    def _watch_elders(self, session: Session, elder_ids: Sequence[int], now: datetime) -> None:
        elders = self._elders(session, elder_ids)
        devices = self._devices_of(session, elder_ids)
        rows = deadlines_of(session, elder_ids)
        self.examined += len(rows)
        existing = {(DeadlineRule(r.rule), r.subject): r for r in rows}
        new: list[SetDeadline] = []
        for elder in elders.values():
            mine = [d for d in devices[elder.id] if d.status != DeviceStatus.RETIRED.value]
            sensors = [d for d in mine if watches_activity(self._catalogue.get(d.model))]
            buttons = [d for d in mine if can_check_in(self._catalogue.get(d.model))]
            for rule, wanted, chosen in (
                (DeadlineRule.INACTIVITY, elder.plan.inactivity_h > 0, sensors),
                (DeadlineRule.CHECKIN, elder.plan.checkin, buttons),
            ):
                row = existing.get((rule, str(elder.id)))
                if not wanted or not chosen:
                    if row is not None:
                        drop(session, rule, str(elder.id))
                elif row is None:
                    due = self._first_due(rule, elder.plan, now)
                    new.append(
                        SetDeadline(
                            rule=rule,
                            subject=str(elder.id),
                            elder_id=elder.id,
                            device_id=min(d.id for d in chosen),
                            basis_at=now,
                            due_at=due,
                        )
                    )
                else:
                    self._replan(session, row, elder.plan)
            for row in rows:
                if row.rule == DeadlineRule.BED.value and row.elder_id == elder.id:
                    self._replan(session, row, elder.plan)
        arm_if_absent(session, new)

    def _first_due(self, rule: DeadlineRule, plan: WelfarePlan, now: datetime) -> datetime:
        if rule is DeadlineRule.INACTIVITY:
            return inactivity_due(now, plan, self._zone)
        return checkin_due_from(now, plan, self._zone)

    def _replan(self, session: Session, row: DeadlineRow, plan: WelfarePlan) -> None:
        """Settings changed (or not): an armed deadline follows them."""
        if row.planned_at is None:
            return
        planned = replan(as_deadline(row), plan, self._zone)
        if planned != row.planned_at:
            keep(session, row, basis_at=row.basis_at, planned_at=planned, due_at=planned)

    def _watch_tests(self, session: Session, device_ids: Sequence[str], now: datetime) -> None:
        new = []
        for device in self._devices(session, device_ids).values():
            model = self._catalogue.get(device.model)
            if model is None or device.status == DeviceStatus.RETIRED.value:
                continue
            days = self._engine.rules.welfare.test_days_of(model)
            if days:
                new.append(
                    SetDeadline(
                        rule=DeadlineRule.TEST,
                        subject=device.id,
                        elder_id=device.elder_id,
                        device_id=device.id,
                        basis_at=now,
                        due_at=now + timedelta(days=days),
                    )
                )
        arm_if_absent(session, new)

    # --- firing ---------------------------------------------------------------------------------

    def _fire(
        self, session: Session, row: DeadlineRow, now: datetime, outages: Outages
    ) -> AlertChange | None:
        deadline = as_deadline(row)
        rule = deadline.rule
        elder = self._elder_of(session, deadline.elder_id)
        verdict = self._verdict(session, deadline.rule, deadline.subject, elder)
        if verdict is Verdict.DROP or (elder is None and rule is not DeadlineRule.TEST):
            drop(session, rule, deadline.subject)
            return None
        plan = elder.plan if elder is not None else self._engine.plan_for(frozenset(), ())
        if verdict is Verdict.RECHECK:
            # Watching begins again once its sensors are back: counted from now.
            planned = self._fresh(rule, plan, now)
            keep(session, row, basis_at=now, planned_at=planned, due_at=now + RECHECK)
            return None
        categories = elder.categories if elder is not None else frozenset()
        firing = fire(self._engine.rules, deadline, plan, categories, now, outages)
        if firing is None:
            return None
        keep(
            session,
            row,
            basis_at=firing.basis_at,
            planned_at=firing.planned_at,
            due_at=firing.due_at,
        )
        if firing.alert is None:
            return None  # moved by an outage
        alert = firing.alert
        if alert.type in ELDER_ALERTS and alert.elder_id is not None:
            already = open_elder_alert(session, alert.elder_id, alert.type)
            if already is not None:
                if rule is DeadlineRule.INACTIVITY:
                    return None  # still the same silence
                # Another day missed while the alert is open: counted on it.
                alert = replace(alert, device_id=already.device_id)
        change = raise_or_coalesce(session, alert, now)
        FIRED.labels(rule.value).inc()
        log.warning(
            "scheduler.welfare_alert",
            type=alert.type.value,
            elder_id=alert.elder_id,
            device_id=alert.device_id,
        )
        return change

    def _fresh(self, rule: DeadlineRule, plan: WelfarePlan, now: datetime) -> datetime:
        if rule is DeadlineRule.TEST:
            return now + RECHECK  # the period starts over once the device is back
        return self._first_due(rule, plan, now)

    def _verdict(
        self, session: Session, rule: DeadlineRule, subject: str, elder: Elder | None
    ) -> Verdict:
        """May this deadline fire now? Only with the right kind of device, active."""
        if rule in (DeadlineRule.INACTIVITY, DeadlineRule.CHECKIN):
            if elder is None:
                return Verdict.DROP
            if rule is DeadlineRule.INACTIVITY and elder.plan.inactivity_h <= 0:
                return Verdict.DROP
            if rule is DeadlineRule.CHECKIN and not elder.plan.checkin:
                return Verdict.DROP
            kind = watches_activity if rule is DeadlineRule.INACTIVITY else can_check_in
            mine = [
                d
                for d in self._devices_of(session, [elder.id])[elder.id]
                if kind(self._catalogue.get(d.model)) and d.status != DeviceStatus.RETIRED.value
            ]
            if not mine:
                return Verdict.DROP
            if not any(d.status == DeviceStatus.ACTIVE.value for d in mine):
                return Verdict.RECHECK
            return Verdict.FIRE
        device = self._devices(session, [subject]).get(subject)
        if device is None or device.status == DeviceStatus.RETIRED.value:
            return Verdict.DROP
        model = self._catalogue.get(device.model)
        if rule is DeadlineRule.BED:
            owned = elder is not None and device.elder_id == elder.id
            active = device.status == DeviceStatus.ACTIVE.value
            return Verdict.FIRE if owned and active else Verdict.DROP
        if model is None or not self._engine.rules.welfare.test_days_of(model):
            return Verdict.DROP
        if device.status != DeviceStatus.ACTIVE.value:
            return Verdict.RECHECK
        return Verdict.FIRE

    # --- reading the registry ----------------------------------------------------------------

    def _elder_of(self, session: Session, elder_id: int | None) -> Elder | None:
        if elder_id is None:
            return None
        return self._elders(session, [elder_id]).get(elder_id)

    def _elders(self, session: Session, elder_ids: Sequence[int]) -> dict[int, Elder]:
        rows = session.execute(
            select(ElderRow.id, ElderRow.categories, ElderRow.welfare).where(
                ElderRow.id.in_(elder_ids)
            )
        )
        found = {}
        for elder_id, categories, welfare in rows:
            kinds = frozenset(categories or ())
            plan = self._engine.plan_for(kinds, welfare_key(welfare))
            found[elder_id] = Elder(id=elder_id, categories=kinds, plan=plan)
        return found

    def _devices_of(self, session: Session, elder_ids: Sequence[int]) -> dict[int, list[Device]]:
        found: dict[int, list[Device]] = defaultdict(list)
        rows = session.execute(
            select(DeviceRow.id, DeviceRow.model, DeviceRow.status, DeviceRow.elder_id).where(
                DeviceRow.elder_id.in_(elder_ids)
            )
        )
        for device_id, model, status, owner in rows:
            if owner is not None:
                found[owner].append(
                    Device(id=device_id, model=model, status=status, elder_id=owner)
                )
        return found

    def _devices(self, session: Session, device_ids: Sequence[str]) -> dict[str, Device]:
        rows = session.execute(
            select(DeviceRow.id, DeviceRow.model, DeviceRow.status, DeviceRow.elder_id).where(
                DeviceRow.id.in_(device_ids)
            )
        )
        return {
            device_id: Device(id=device_id, model=model, status=status, elder_id=elder_id)
            for device_id, model, status, elder_id in rows
        }
