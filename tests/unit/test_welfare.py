"""The welfare and periodic-test rules, pure, on a virtual clock: per rule a table of
situations (alarm, no alarm, restore). Events go through the engine; deadlines are kept in a
dict and fired with ``welfare.fire`` as the virtual clock passes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.decisions import (
    DeadlineRule,
    NoteOnAlert,
    RaiseAlert,
    ResolveAlert,
    ResolveElderAlert,
    SetDeadline,
)
from alerting.engine import DeviceState, OpenAlert, RulesEngine
from alerting.model import AlertType
from alerting.outages import Outages
from alerting.rules import RulesError, load_rules
from alerting.welfare import (
    Deadline,
    bed_due,
    fire,
    inactivity_due,
    next_at,
    waking_between,
    within,
)
from devices.events import SensorEvent
from devices.registry import DeviceInfo

ZONE = ZoneInfo("Asia/Shanghai")
DAY0 = datetime(2026, 11, 23, tzinfo=ZONE)  # a Monday, local midnight
engine = RulesEngine()
ELDER_ALERTS = {AlertType.INACTIVITY, AlertType.CHECKIN_MISSED, AlertType.BED_NOT_VACATED}


def local(text: str, day: int = 0) -> datetime:
    """``"08:30"`` on day ``day`` (0: DAY0), local time, as UTC."""
    hours, minutes = map(int, text.split(":"))
    return (DAY0 + timedelta(days=day, hours=hours, minutes=minutes)).astimezone(UTC)


@dataclass
class Home:
    """One elder with one device, on a virtual clock."""

    model: str
    categories: frozenset[str] = frozenset()
    welfare: tuple[tuple[str, object], ...] = ()
    status: str = "active"
    now: datetime = field(default_factory=lambda: local("00:00"))
    outages: Outages = field(default_factory=Outages)
    deadlines: dict[tuple[DeadlineRule, str], tuple[Deadline, datetime | None]] = field(
        default_factory=dict
    )
    open: dict[AlertType, str] = field(default_factory=dict)
    raised: list[tuple[AlertType, datetime]] = field(default_factory=list)
    ended: list[tuple[AlertType, str]] = field(default_factory=list)

    @property
    def device(self) -> DeviceInfo:
        return DeviceInfo(
            device_id="d1",
            model=self.model,
            elder_id=7,
            elder_categories=self.categories,
            status=self.status,
            elder_welfare=self.welfare,
        )

    def event(self, kind: str, at: datetime) -> None:
        self.until(at)
        state = DeviceState(
            device_id="d1",
            device=self.device,
            open_alerts={
                a: OpenAlert(type=a, since=at) for a in self.open if a not in ELDER_ALERTS
            },
            elder_open=frozenset(a for a in self.open if a in ELDER_ALERTS),
        )
        sensor = SensorEvent(device_id="d1", received_at=at, occurred_at=at, type=kind)
        for decision in engine.evaluate(state, sensor, at).decisions:
            if isinstance(decision, SetDeadline):
                self.set(decision)
            elif isinstance(decision, RaiseAlert):
                self.raise_(decision)
            elif isinstance(decision, ResolveAlert | ResolveElderAlert):
                self.open.pop(decision.type)
                self.ended.append((decision.type, "resolved"))
            elif isinstance(decision, NoteOnAlert):
                self.ended.append((decision.type, decision.action))

    def set(self, decision: SetDeadline) -> None:
        key = (decision.rule, decision.subject)
        known = self.deadlines.get(key)
        if known is not None and known[0].basis_at >= decision.basis_at:
            return
        deadline = Deadline(
            rule=decision.rule,
            subject=decision.subject,
            elder_id=decision.elder_id,
            device_id=decision.device_id,
            basis_at=decision.basis_at,
            planned_at=decision.due_at or decision.basis_at,
        )
        self.deadlines[key] = (deadline, decision.due_at)

    def raise_(self, decision: RaiseAlert) -> None:
        if decision.type not in self.open:
            self.open[decision.type] = decision.device_id
            self.raised.append((decision.type, self.now))

    def until(self, end: datetime) -> None:
        """Move the clock to ``end``, firing each deadline when it comes due."""
        while True:
            due = [(d, k) for k, (_, d) in self.deadlines.items() if d is not None and d <= end]
            if not due:
                break
            when, key = min(due)
            self.now = max(self.now, when)
            deadline, _ = self.deadlines[key]
            plan = engine.plan_of(self.device)
            assert plan is not None
            firing = fire(engine.rules, deadline, plan, self.categories, self.now, self.outages)
            assert firing is not None
            if firing.planned_at is not None:
                deadline = replace(deadline, basis_at=firing.basis_at, planned_at=firing.planned_at)
            self.deadlines[key] = (deadline, firing.due_at)
            if firing.alert is not None:
                self.raise_(firing.alert)
        self.now = max(self.now, end)


Step = tuple[str, str, int]  # (event or "wait", local time, day)


def play(home: Home, steps: Sequence[Step]) -> Home:
    for kind, at, day in steps:
        if kind == "wait":
            home.until(local(at, day))
        else:
            home.event(kind, local(at, day))
    return home


def raised_at(home: Home) -> list[tuple[str, str]]:
    return [(a.value, t.astimezone(ZONE).strftime("%d %H:%M")) for a, t in home.raised]


CHECKIN = (("checkin", True),)
WANDERS = (("wandering", True),)
NO_INACTIVITY = (("inactivity_h", 0),)


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    steps: Sequence[Step]
    alerts: Sequence[tuple[str, str]]  # (type, "dd HH:MM" local) raised
    ended: Sequence[tuple[str, str]] = ()  # (type, "resolved" or a timeline action)
    categories: tuple[str, ...] = ()
    welfare: tuple[tuple[str, object], ...] = ()
    status: str = "active"


CASES = [
    # --- inactivity: 12 h, quiet hours 22:00-07:00 ---
    Case("inactivity: silent 12 h", "pir-motion",
         [("motion", "08:00", 0), ("wait", "21:00", 0)], [("inactivity", "23 20:00")]),
    Case("inactivity: moving", "pir-motion",
         [("motion", "08:00", 0), ("motion", "19:00", 0), ("wait", "21:00", 0)], []),
    Case("inactivity: the quiet hours do not count", "pir-motion",
         [("motion", "12:00", 0), ("wait", "08:59", 1)], []),
    Case("inactivity: counted on after 07:00", "pir-motion",
         [("motion", "12:00", 0), ("wait", "09:30", 1)], [("inactivity", "24 09:00")]),
    Case("inactivity: a movement at night counts from 07:00", "pir-motion",
         [("motion", "03:00", 1), ("wait", "18:59", 1)], []),
    Case("inactivity: and fires 12 waking hours later", "pir-motion",
         [("motion", "03:00", 1), ("wait", "19:30", 1)], [("inactivity", "24 19:00")]),
    Case("inactivity: the first movement of the morning ends it", "pir-motion",
         [("motion", "08:00", 0), ("wait", "23:00", 0), ("motion", "07:05", 1)],
         [("inactivity", "23 18:00")], [("inactivity", "resolved")],
         categories=("living_alone",)),
    Case("inactivity: restored by movement", "pir-motion",
         [("motion", "08:00", 0), ("wait", "21:00", 0), ("door_open", "21:10", 0)],
         [("inactivity", "23 20:00")], [("inactivity", "resolved")]),
    Case("inactivity: living alone, 10 h", "pir-motion",
         [("motion", "08:00", 0), ("wait", "21:00", 0)], [("inactivity", "23 18:00")],
         categories=("living_alone",)),
    Case("inactivity: the elder's own 4 h beats the category", "pir-motion",
         [("motion", "08:00", 0), ("wait", "21:00", 0)], [("inactivity", "23 12:00")],
         categories=("living_alone",), welfare=(("inactivity_h", 4),)),
    Case("inactivity: off for this elder", "pir-motion",
         [("motion", "08:00", 0), ("wait", "08:00", 3)], [], welfare=NO_INACTIVITY),
    Case("inactivity: a sensor in maintenance counts for nothing", "pir-motion",
         [("motion", "08:00", 0), ("wait", "21:00", 0)], [], status="maintenance"),
    # --- daily check-in by 10:00, for elders who opted in ---
    Case("check-in: missed", "sos-pendant",
         [("checkin", "09:00", 0), ("wait", "12:00", 1)], [("checkin_missed", "24 10:00")],
         welfare=CHECKIN + NO_INACTIVITY),
    Case("check-in: done", "sos-pendant",
         [("checkin", "09:00", 0), ("checkin", "09:30", 1), ("wait", "12:00", 1)], [],
         welfare=CHECKIN + NO_INACTIVITY),
    Case("check-in: a late one resolves", "sos-pendant",
         [("checkin", "09:00", 0), ("checkin", "10:30", 1)], [("checkin_missed", "24 10:00")],
         [("checkin_missed", "resolved")], welfare=CHECKIN + NO_INACTIVITY),
    Case("check-in: every day anew", "sos-pendant",
         [("checkin", "09:00", 0), ("wait", "12:00", 2), ("checkin", "12:05", 2),
          ("wait", "12:00", 3)],
         [("checkin_missed", "24 10:00"), ("checkin_missed", "26 10:00")],
         [("checkin_missed", "resolved")], welfare=CHECKIN + NO_INACTIVITY),
    Case("check-in: not opted in", "sos-pendant",
         [("checkin", "09:00", 0), ("wait", "12:00", 3)], [], welfare=NO_INACTIVITY),
    # --- night door, for elders who may wander: 22:00-06:00 ---
    Case("night door: opened at 23:00", "door-contact", [("door_open", "23:00", 0)],
         [("night_door", "23 23:00")], welfare=WANDERS),
    Case("night door: opened at 05:30", "door-contact", [("door_open", "05:30", 1)],
         [("night_door", "24 05:30")], welfare=WANDERS),
    Case("night door: opened at 20:00", "door-contact", [("door_open", "20:00", 0)], [],
         welfare=WANDERS),
    Case("night door: not a wanderer", "door-contact", [("door_open", "23:00", 0)], []),
    Case("night door: closing is noted, a person ends it", "door-contact",
         [("door_open", "23:00", 0), ("door_close", "23:01", 0)],
         [("night_door", "23 23:00")], [("night_door", "door_closed")], welfare=WANDERS),
    # --- out of bed by 09:00 ---
    Case("bed: still in bed at 09:00", "bed-sensor",
         [("bed_enter", "22:30", 0), ("wait", "10:00", 1)], [("bed_not_vacated", "24 09:00")],
         welfare=NO_INACTIVITY),
    Case("bed: up at 07:00", "bed-sensor",
         [("bed_enter", "22:30", 0), ("bed_exit", "07:00", 1), ("wait", "10:00", 1)], [],
         welfare=NO_INACTIVITY),
    Case("bed: a lie-down after getting up counts from the next night", "bed-sensor",
         [("bed_enter", "08:45", 1), ("wait", "10:00", 1)], [], welfare=NO_INACTIVITY),
    Case("bed: getting up resolves", "bed-sensor",
         [("bed_enter", "22:30", 0), ("bed_exit", "09:30", 1)],
         [("bed_not_vacated", "24 09:00")], [("bed_not_vacated", "resolved")],
         welfare=NO_INACTIVITY),
    Case("bed: with the inactivity rule, a night in bed is no silence", "bed-sensor",
         [("bed_enter", "21:30", 0), ("bed_exit", "06:30", 1), ("bed_enter", "13:00", 1),
          ("bed_exit", "14:00", 1), ("bed_enter", "21:30", 1), ("bed_exit", "06:40", 2),
          ("wait", "16:59", 2)], [],
         categories=("living_alone",)),
    Case("bed: not out of bed is found at 09:00, inactivity only later", "bed-sensor",
         [("bed_enter", "21:30", 0), ("wait", "16:29", 1)], [("bed_not_vacated", "24 09:00")],
         categories=("living_alone",)),
    Case("bed: and inactivity after 10 waking hours (21:30-22:00, then 07:00-16:30)",
         "bed-sensor", [("bed_enter", "21:30", 0), ("wait", "17:00", 1)],
         [("bed_not_vacated", "24 09:00"), ("inactivity", "24 16:30")],
         categories=("living_alone",)),
    Case("check-in: with the inactivity rule on, both are counted", "sos-pendant",
         [("checkin", "09:00", 0), ("checkin", "18:00", 0), ("checkin", "09:10", 1),
          ("checkin", "18:00", 1), ("wait", "12:59", 2)], [("checkin_missed", "25 10:00")],
         welfare=CHECKIN, categories=("living_alone",)),
    Case("bed: the elder's own 08:00", "bed-sensor",
         [("bed_enter", "22:30", 0), ("wait", "10:00", 1)], [("bed_not_vacated", "24 08:00")],
         welfare=(("up_by", "08:00"), *NO_INACTIVITY)),
    # --- periodic test: 7 days for a device with an SOS button ---
    Case("test: overdue", "sos-pendant",
         [("test", "10:00", 0), ("wait", "12:00", 7)], [("test_overdue", "30 10:00")]),
    Case("test: done on day 6", "sos-pendant",
         [("test", "10:00", 0), ("test", "10:00", 6), ("wait", "12:00", 7)], []),
    Case("test: a test resolves", "sos-pendant",
         [("test", "10:00", 0), ("test", "11:00", 7)], [("test_overdue", "30 10:00")],
         [("test_overdue", "resolved")]),
    Case("test: not owed by a motion sensor", "pir-motion",
         [("test", "10:00", 0), ("wait", "12:00", 30)], [], welfare=NO_INACTIVITY),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_time_rules(case: Case) -> None:
    home = Home(
        model=case.model,
        categories=frozenset(case.categories),
        welfare=case.welfare,
        status=case.status,
    )
    play(home, case.steps)
    assert raised_at(home) == list(case.alerts)
    assert [(a.value, how) for a, how in home.ended] == list(case.ended)


def test_an_outage_moves_the_deadline_by_its_length() -> None:
    home = Home(model="pir-motion")
    home.event("motion", local("08:00"))
    # Deaf from 15:00 to 16:00: that hour of silence does not count.
    home.outages.add(local("15:00"), local("16:00"))
    home.until(local("20:30"))
    assert home.raised == []
    home.until(local("21:30"))
    assert raised_at(home) == [("inactivity", "23 21:00")]


def half_hourly_days(days: int) -> list[Step]:
    """An elder who moves every half hour from 07:00 to 20:30 and then sleeps."""
    return [
        ("motion", f"{minute // 60:02d}:{minute % 60:02d}", day)
        for day in range(days)
        for minute in range(7 * 60, 20 * 60 + 31, 30)
    ]


@pytest.mark.parametrize("categories", [(), ("living_alone",), ("disabled",)])
def test_an_ordinary_day_and_night_raise_nothing(categories: tuple[str, ...]) -> None:
    """The issue's morning storm: a week of days 07:00-20:30 and nights asleep."""
    home = play(
        Home(model="pir-motion", categories=frozenset(categories)),
        [*half_hourly_days(7), ("wait", "12:00", 7)],
    )
    assert home.raised == []


def test_an_elder_who_stops_moving_at_0800_is_looked_for_the_same_evening() -> None:
    home = play(
        Home(model="pir-motion", categories=frozenset({"living_alone"})),
        [*half_hourly_days(2), ("motion", "07:30", 2), ("motion", "08:00", 2)],
    )
    home.until(local("17:59", 2))
    assert home.raised == []
    home.until(local("23:59", 2))
    assert raised_at(home) == [("inactivity", "25 18:00")]


def test_an_outage_at_night_moves_nothing_one_by_day_moves_the_deadline() -> None:
    night = Home(model="pir-motion")
    night.event("motion", local("20:00"))  # 20:00-22:00, then 07:00-17:00
    night.outages.add(local("23:00"), local("02:00", 1))
    night.until(local("23:00", 1))
    assert raised_at(night) == [("inactivity", "24 17:00")]
    day = Home(model="pir-motion")
    day.event("motion", local("20:00"))
    day.outages.add(local("21:30"), local("08:00", 1))  # 30 waking minutes, then 1 h
    day.until(local("23:00", 1))
    assert raised_at(day) == [("inactivity", "24 18:30")]


def test_nothing_fires_while_the_platform_is_down() -> None:
    home = Home(model="sos-pendant", welfare=CHECKIN + NO_INACTIVITY)
    home.event("checkin", local("09:00"))
    deadline, _ = home.deadlines[(DeadlineRule.CHECKIN, "7")]
    outages = Outages()
    outages.went_down(local("09:50", 1))
    plan = engine.plan_of(home.device)
    assert plan is not None
    assert fire(engine.rules, deadline, plan, frozenset(), local("10:30", 1), outages) is None


@pytest.mark.parametrize(
    ("moment", "start", "end", "inside"),
    [
        ("23:00", "22:00", "07:00", True),
        ("06:59", "22:00", "07:00", True),
        ("07:00", "22:00", "07:00", False),
        ("12:00", "09:00", "17:00", True),
        ("17:00", "09:00", "17:00", False),
        ("12:00", "00:00", "00:00", False),  # an empty window: no quiet hours
    ],
)
def test_windows_of_the_day(moment: str, start: str, end: str, inside: bool) -> None:
    parse = time.fromisoformat
    assert within(parse(moment), parse(start), parse(end)) is inside


def test_local_times_are_read_in_the_rules_time_zone() -> None:
    plan = engine.rules.welfare.plan(())
    # 01:00 UTC is 09:00 in Shanghai: the next 10:00 there is an hour later.
    assert next_at(datetime(2026, 11, 23, 1, tzinfo=UTC), time(10), ZONE) == datetime(
        2026, 11, 23, 2, tzinfo=UTC
    )
    assert bed_due(local("02:05", 1), plan, ZONE) == local("09:00", 1)
    assert bed_due(local("06:30", 1), plan, ZONE) == local("09:00", 2)
    # 19:00-22:00, then 07:00-16:00: twelve waking hours.
    assert inactivity_due(local("19:00"), plan, ZONE) == local("16:00", 1)


def test_the_most_protective_category_value_wins_and_the_elder_has_the_last_word() -> None:
    rules = engine.rules.welfare
    both = rules.plan(frozenset({"living_alone", "disabled"}))
    assert both.inactivity_h == 8
    own = rules.plan(frozenset({"disabled"}), (("inactivity_h", 16), ("checkin", True)))
    assert (own.inactivity_h, own.checkin) == (16, True)
    # A stored value that cannot be read is ignored, not fatal.
    assert rules.plan((), (("checkin_by", "late"),)).checkin_by == time(10)


def test_a_bad_welfare_setting_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[welfare]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(RulesError, match=r"welfare\.timezone"):
        load_rules(path)
    path.write_text("[welfare.by_category.living_alone]\nsnooze = 3\n")
    with pytest.raises(RulesError, match=r"welfare\.by_category\.living_alone\.snooze"):
        load_rules(path)


QUIET = st.sampled_from([(time(22), time(7)), (time(1), time(5)), (time(0), time(0))])
# hypothesis takes naive bounds and attaches the zone itself.
MOMENTS = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(start=MOMENTS, hours=st.floats(min_value=0, max_value=168), quiet=QUIET)
def test_inactivity_counts_exactly_the_waking_hours(
    start: datetime, hours: float, quiet: tuple[time, time]
) -> None:
    plan = replace(
        engine.rules.welfare.plan(()), inactivity_h=hours, quiet_from=quiet[0],
        quiet_until=quiet[1],
    )  # fmt: skip
    due = inactivity_due(start, plan, ZONE)
    assert due >= start + timedelta(hours=hours)
    assert abs(waking_between(start, due, plan, ZONE) - timedelta(hours=hours)) < timedelta(
        microseconds=10
    )
    # Due at a waking moment (the quiet hours' first instant at the latest), never inside.
    local_time = due.astimezone(ZONE).time()
    assert not within(local_time, *quiet) or local_time == quiet[0]
    # A movement later never brings the deadline earlier.
    assert inactivity_due(start + timedelta(minutes=1), plan, ZONE) >= due
