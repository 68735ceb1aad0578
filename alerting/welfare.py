"""The welfare and periodic-test time rules, pure: what an event means for their deadlines,
and what a deadline that came due means (an alert, or a deadline moved by an outage).

Deadlines are the engine's answer to "when must something have happened by?": the shell
stores them (alerting/deadlines.py) and the scheduler fires them (alerting/welfare_watch.py).
No clock is read here: times come in, in UTC; local times of day are read in the rules'
time zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerting.decisions import DeadlineRule, RaiseAlert, ResolveElderAlert, SetDeadline
from alerting.model import ALERT_KINDS, AlertType
from alerting.outages import Outages
from alerting.rules import RuleSet
from alerting.welfare_rules import ACTIVITY_EVENTS, WelfarePlan
from devices.catalogue import DeviceModel
from devices.events import SensorEvent
from devices.registry import DeviceInfo

Span = tuple[datetime, datetime]

ALERT_OF_RULE = {
    DeadlineRule.INACTIVITY: AlertType.INACTIVITY,
    DeadlineRule.CHECKIN: AlertType.CHECKIN_MISSED,
    DeadlineRule.BED: AlertType.BED_NOT_VACATED,
    DeadlineRule.TEST: AlertType.TEST_OVERDUE,
}


# --- local time ---------------------------------------------------------------------------


def at_local(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """``moment`` on ``day`` in ``zone``, as UTC."""
    return datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def within(moment: time, start: time, end: time) -> bool:
    """Is the time of day in [start, end)? A window may run over midnight; start == end is
    an empty window."""
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def next_at(after: datetime, moment: time, zone: ZoneInfo) -> datetime:
    """The first instant later than ``after`` whose local time of day is ``moment``."""
    candidate = at_local(local_day(after, zone), moment, zone)
    if candidate <= after:
        candidate = at_local(local_day(after, zone) + timedelta(days=1), moment, zone)
    return candidate


# --- when each rule falls due ----------------------------------------------------------------


def waking_spans(start: datetime, plan: WelfarePlan, zone: ZoneInfo) -> Iterator[Span]:
    """The stretches of waking time (outside the quiet hours) from ``start`` on, in order;
    the first begins at ``start`` if it is waking time. Without quiet hours, one endless span."""
    if plan.quiet_from == plan.quiet_until:
        yield start, datetime.max.replace(tzinfo=UTC)
        return
    moment = start
    while True:
        if within(moment.astimezone(zone).time(), plan.quiet_from, plan.quiet_until):
            moment = next_at(moment, plan.quiet_until, zone)
        end = next_at(moment, plan.quiet_from, zone)
        yield moment, end
        moment = end


def waking_between(start: datetime, end: datetime, plan: WelfarePlan, zone: ZoneInfo) -> timedelta:
    """How much of [start, end) is waking time."""
    total = timedelta()
    if end <= start:
        return total
    for lo, hi in waking_spans(start, plan, zone):
        if lo >= end:
            break
        total += min(hi, end) - lo
    return total


def after_waking(start: datetime, waking: timedelta, plan: WelfarePlan, zone: ZoneInfo) -> datetime:
    """The instant when ``waking`` of waking time has passed since ``start``."""
    left = waking
    for lo, hi in waking_spans(start, plan, zone):
        if lo + left <= hi:
            return lo + left
        left -= hi - lo
    raise AssertionError("waking_spans never ends")  # pragma: no cover


def inactivity_due(
    last_active: datetime, plan: WelfarePlan, zone: ZoneInfo, extra: timedelta = timedelta()
) -> datetime:
    """``inactivity_h`` hours of waking time after the last movement (plus ``extra``, the
    waking time the platform itself was away): the quiet hours (22:00-07:00) do not count.
    Someone who moves until 20:30 and sleeps is not looked for at 07:00 each morning; someone
    whose last movement was at 08:00 is looked for the same evening (18:00 at 10 h), and one
    last seen at 21:00 the next afternoon."""
    return after_waking(last_active, timedelta(hours=plan.inactivity_h) + extra, plan, zone)


def waking_outage(
    outages: Outages, start: datetime, end: datetime, plan: WelfarePlan, zone: ZoneInfo
) -> timedelta:
    """The waking time in [start, end) when the platform was away: what moves an inactivity
    deadline (an outage at night moves nothing, the night did not count anyway)."""
    total = timedelta()
    for lo, hi in outages.intervals:
        total += waking_between(max(lo, start), min(hi, end), plan, zone)
    return total


def checkin_due_after_checkin(checked_in: datetime, plan: WelfarePlan, zone: ZoneInfo) -> datetime:
    """A check-in covers its local day (even when late): the next one is due tomorrow."""
    return at_local(local_day(checked_in, zone) + timedelta(days=1), plan.checkin_by, zone)


def checkin_due_from(start: datetime, plan: WelfarePlan, zone: ZoneInfo) -> datetime:
    """Watching begins at ``start`` (opt-in, or first seen): the first check-in time after it."""
    return next_at(start, plan.checkin_by, zone)


def bed_due(in_bed_since: datetime, plan: WelfarePlan, zone: ZoneInfo) -> datetime:
    """In bed since before the night ended (``night_until``) and still at ``up_by``: a lie-in
    after getting up (a nap at 08:45) counts from the next night."""
    local = in_bed_since.astimezone(zone)
    day = local.date()
    if local.time() >= plan.night_until:
        day += timedelta(days=1)
    return at_local(day, plan.up_by, zone)


def at_night(at: datetime, plan: WelfarePlan, zone: ZoneInfo) -> bool:
    return within(at.astimezone(zone).time(), plan.night_from, plan.night_until)


# --- events ------------------------------------------------------------------------------------


def event_time(event: SensorEvent) -> datetime:
    """When it happened, but never later than it was received (a device clock ahead)."""
    return min(event.occurred_at, event.received_at)


def on_event(
    rules: RuleSet,
    model: DeviceModel | None,
    device: DeviceInfo,
    plan: WelfarePlan | None,
    event: SensorEvent,
    elder_open: frozenset[AlertType],
) -> list[SetDeadline | ResolveElderAlert]:
    """Deadlines an event sets or clears, and the elder's welfare alerts it ends.

    ``plan`` is None for a device assigned to nobody. The caller has already checked that the
    device is active and the event is not a retained replay nor a restore.
    """
    at = event_time(event)
    zone = rules.welfare.zone
    decisions: list[SetDeadline | ResolveElderAlert] = []
    if event.type == "test" and model is not None:
        days = rules.welfare.test_days_of(model)
        if days:
            due = at + timedelta(days=days)
            decisions.append(_deadline(DeadlineRule.TEST, device.device_id, device, at, due))
    elder = device.elder_id
    if elder is None or plan is None:
        return decisions

    def resolve(alert: AlertType, reason: str) -> None:
        if alert in elder_open:
            decisions.append(ResolveElderAlert(elder_id=elder, type=alert, reason=reason))

    if event.type in ACTIVITY_EVENTS:
        resolve(AlertType.INACTIVITY, f"{event.type} at {device.device_id}")
        if plan.inactivity_h > 0:
            due = inactivity_due(at, plan, zone)
            decisions.append(_deadline(DeadlineRule.INACTIVITY, str(elder), device, at, due))
    if event.type == "checkin":
        resolve(AlertType.CHECKIN_MISSED, "checked in")
        if plan.checkin:
            due = checkin_due_after_checkin(at, plan, zone)
            decisions.append(_deadline(DeadlineRule.CHECKIN, str(elder), device, at, due))
    elif event.type == "bed_enter":
        due = bed_due(at, plan, zone)
        decisions.append(_deadline(DeadlineRule.BED, device.device_id, device, at, due))
    elif event.type == "bed_exit":
        resolve(AlertType.BED_NOT_VACATED, "out of bed")
        decisions.append(_deadline(DeadlineRule.BED, device.device_id, device, at, None))
    return decisions


def _deadline(
    rule: DeadlineRule, subject: str, device: DeviceInfo, basis: datetime, due: datetime | None
) -> SetDeadline:
    return SetDeadline(
        rule=rule,
        subject=subject,
        elder_id=device.elder_id,
        device_id=device.device_id,
        basis_at=basis,
        due_at=due,
    )


# --- deadlines that came due -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Deadline:
    """A stored deadline. ``basis_at``: what it counts from (the last movement, check-in,
    test, the time the elder went to bed, or the start of the present window); ``planned_at``:
    when the rule wants it, before any outage moved it."""

    rule: DeadlineRule
    subject: str
    elder_id: int | None
    device_id: str
    basis_at: datetime
    planned_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Firing:
    """What the scheduler does with a deadline: raise ``alert`` (or not) and keep the deadline
    at ``due_at`` (None: disarmed until an event sets it again). ``basis_at`` and
    ``planned_at`` are the deadline's next values when it is re-armed for the next day."""

    alert: RaiseAlert | None
    due_at: datetime | None
    basis_at: datetime
    planned_at: datetime | None


def fire(
    rules: RuleSet,
    deadline: Deadline,
    plan: WelfarePlan,
    categories: frozenset[str],
    now: datetime,
    outages: Outages,
) -> Firing | None:
    """The deadline is due by the index at ``now``: fire it, or move it by the platform's
    outages since its basis (principle 5). None while the platform is down: nothing fires."""
    if outages.down_since is not None:
        return None
    zone = rules.welfare.zone
    if deadline.rule is DeadlineRule.INACTIVITY:
        extra = waking_outage(outages, deadline.basis_at, now, plan, zone)
        effective = inactivity_due(deadline.basis_at, plan, zone, extra)
    else:
        extra = outages.overlap(deadline.basis_at, now)
        effective = deadline.planned_at + extra
    if effective > now:
        return Firing(
            alert=None,
            due_at=effective,
            basis_at=deadline.basis_at,
            planned_at=deadline.planned_at,
        )
    alert = ALERT_OF_RULE[deadline.rule]
    attributes: dict[str, object] = {
        "rule": deadline.rule.value,
        "since": deadline.basis_at.isoformat(),
        "due": deadline.planned_at.isoformat(),
    }
    if extra:
        attributes["outage_s"] = int(extra.total_seconds())
    raise_alert = RaiseAlert(
        device_id=deadline.device_id,
        elder_id=deadline.elder_id,
        type=alert,
        category=ALERT_KINDS[alert].category,
        priority=rules.priority_of(alert, categories),
        occurred_at=now,
        attributes=attributes,
    )
    if deadline.rule is DeadlineRule.CHECKIN:
        # Every day anew: tomorrow's check-in, counted from today's deadline.
        day = local_day(deadline.planned_at, zone) + timedelta(days=1)
        planned = at_local(day, plan.checkin_by, zone)
    elif deadline.rule is DeadlineRule.BED:
        day = local_day(deadline.planned_at, zone) + timedelta(days=1)
        planned = at_local(day, plan.up_by, zone)
    else:
        # Once per silence: armed again by the next movement or test.
        return Firing(alert=raise_alert, due_at=None, basis_at=deadline.basis_at, planned_at=None)
    return Firing(
        alert=raise_alert, due_at=planned, basis_at=deadline.planned_at, planned_at=planned
    )


def replan(deadline: Deadline, plan: WelfarePlan, zone: ZoneInfo) -> datetime:
    """The deadline under changed settings (an elder's or a category's)."""
    if deadline.rule is DeadlineRule.INACTIVITY:
        return inactivity_due(deadline.basis_at, plan, zone)
    if deadline.rule is DeadlineRule.CHECKIN:
        return at_local(local_day(deadline.planned_at, zone), plan.checkin_by, zone)
    if deadline.rule is DeadlineRule.BED:
        return at_local(local_day(deadline.planned_at, zone), plan.up_by, zone)
    return deadline.planned_at
