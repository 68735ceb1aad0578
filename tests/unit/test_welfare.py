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
from alerting.welfare import Deadline, bed_due, fire, inactivity_due, next_at, within
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
    Case("inactivity: due at night, waits for 07:00", "pir-motion",
         [("motion", "12:00", 0), ("wait", "06:59", 1)], []),
    Case("inactivity: and fires at 07:00", "pir-motion",
         [("motion", "12:00", 0), ("wait", "07:30", 1)], [("inactivity", "24 07:00")]),
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
    assert inactivity_due(local("19:00"), plan, ZONE) == local("07:00", 1)


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
