"""The rules engine, pure: a table of situations per rule (alarm, no alarm, restore)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.decisions import (
    CancelAlert,
    Decision,
    NoteOnAlert,
    RaiseAlert,
    RecordSighting,
    RejectMessage,
    ResolveAlert,
    SetDeadline,
)
from alerting.engine import DeviceState, OpenAlert, RulesEngine
from alerting.model import AlertType, Category, Priority
from alerting.rules import RuleSet
from devices.catalogue import CATALOGUE
from devices.events import (
    AvailabilityChanged,
    Heartbeat,
    SensorEvent,
    SosPressed,
    TelemetryReport,
)
from devices.registry import DeviceInfo, Sighting

NOW = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=2)
engine = RulesEngine()


def device(model: str = "sos-pendant", categories: Sequence[str] = ()) -> DeviceInfo:
    return DeviceInfo(
        device_id="d1", model=model, elder_id=17, elder_categories=frozenset(categories)
    )


def state(
    model: str = "sos-pendant",
    open_: Sequence[AlertType] = (),
    categories: Sequence[str] = (),
    since: datetime = EARLIER,
    registered: bool = True,
) -> DeviceState:
    return DeviceState(
        device_id="d1",
        device=device(model, categories) if registered else None,
        open_alerts={a: OpenAlert(type=a, since=since) for a in open_},
    )


def sensor(kind: str, restore: bool = False, at: datetime = NOW, **kw: Any) -> SensorEvent:
    return SensorEvent(
        device_id="d1", received_at=at, occurred_at=at, type=kind, restore=restore, **kw
    )


def raised(decisions: Sequence[Decision]) -> list[tuple[AlertType, Priority]]:
    return [(d.type, d.priority) for d in decisions if isinstance(d, RaiseAlert)]


def others(decisions: Sequence[Decision]) -> list[Decision]:
    return [d for d in decisions if not isinstance(d, RaiseAlert | RecordSighting)]


def test_an_sos_raises_a_critical_emergency_and_tells_the_device() -> None:
    sos = SosPressed(
        device_id="d1",
        received_at=NOW,
        occurred_at=EARLIER,
        location={"room": "卧室"},
        trigger="pullcord",
        seq=9,
        clock_skew_s=-2.0,
        battery=40,
    )
    result = engine.evaluate(state(), sos, NOW)
    assert result.decisions == (
        RaiseAlert(
            device_id="d1",
            elder_id=17,
            type=AlertType.SOS,
            category=Category.EMERGENCY,
            priority=Priority.CRITICAL,
            occurred_at=EARLIER,
            location={"room": "卧室"},
            attributes={"trigger": "pullcord", "seq": 9, "clock_skew_s": -2.0},
            acknowledge_device=True,
            seq=9,
        ),
        RecordSighting(sighting=Sighting(device_id="d1", seen_at=NOW, battery=40, online=True)),
    )
    assert AlertType.SOS in result.state.open_alerts


def test_an_sos_from_an_unknown_device_is_raised_and_marked() -> None:
    sos = SosPressed(device_id="d1", received_at=NOW, occurred_at=NOW, payload_error="bad JSON")
    (decision,) = engine.evaluate(state(registered=False), sos, NOW).decisions
    assert isinstance(decision, RaiseAlert)
    assert decision.elder_id is None
    assert decision.attributes == {"unregistered_device": True, "payload_error": "bad JSON"}


def test_anything_but_an_sos_from_an_unknown_device_is_rejected() -> None:
    beat = Heartbeat(device_id="d1", received_at=NOW, occurred_at=NOW)
    for event in (beat, sensor("smoke")):
        decisions = engine.evaluate(state(registered=False), event, NOW).decisions
        assert decisions == (RejectMessage(reason="unknown device"),)


@pytest.mark.parametrize(
    ("kind", "alert", "priority"),
    [
        ("fall", AlertType.FALL, Priority.CRITICAL),
        ("smoke", AlertType.SMOKE, Priority.CRITICAL),
        ("gas", AlertType.GAS, Priority.CRITICAL),
        ("co", AlertType.CO, Priority.CRITICAL),
        ("water_leak", AlertType.WATER_LEAK, Priority.HIGH),
        ("heat", AlertType.HEAT, Priority.HIGH),
        ("cold", AlertType.COLD, Priority.HIGH),
        ("tamper", AlertType.TAMPER, Priority.MEDIUM),
        ("removed", AlertType.TAMPER, Priority.MEDIUM),
        ("low_battery", AlertType.LOW_BATTERY, Priority.LOW),
        ("power_loss", AlertType.POWER_LOSS, Priority.MEDIUM),
        ("service_request", AlertType.SERVICE_REQUEST, Priority.LOW),
    ],
)
def test_each_alarm_event_raises_its_alert(kind: str, alert: AlertType, priority: Priority) -> None:
    result = engine.evaluate(state("smoke-detector"), sensor(kind), NOW)
    assert raised(result.decisions) == [(alert, priority)]
    assert alert in result.state.open_alerts


@pytest.mark.parametrize(
    "kind", ["motion", "door_open", "door_close", "bed_exit", "checkin", "test"]
)
def test_activity_events_are_sightings_not_alerts(kind: str) -> None:
    decisions = engine.evaluate(state("pir-motion"), sensor(kind), NOW).decisions
    assert raised(decisions) == []
    # They only move the time rules' deadlines (tests/unit/test_welfare.py).
    assert all(isinstance(d, SetDeadline) for d in others(decisions))
    assert any(isinstance(d, RecordSighting) for d in decisions)


@pytest.mark.parametrize("kind", ["smoke", "gas", "co", "water_leak", "heat", "cold"])
def test_an_emergency_restore_is_noted_but_a_person_closes_the_alert(kind: str) -> None:
    alert = AlertType(kind)
    decisions = engine.evaluate(state(open_=[alert]), sensor(kind, restore=True), NOW).decisions
    assert others(decisions) == [
        NoteOnAlert(device_id="d1", type=alert, action="restored", detail={"by": "device"})
    ]
    no_alert = engine.evaluate(state(), sensor(kind, restore=True), NOW).decisions
    assert others(no_alert) == []


@pytest.mark.parametrize(
    ("kind", "alert"),
    [
        ("tamper", AlertType.TAMPER),
        ("low_battery", AlertType.LOW_BATTERY),
        ("power_loss", AlertType.POWER_LOSS),
    ],
)
def test_a_technical_restore_resolves_its_alert(kind: str, alert: AlertType) -> None:
    result = engine.evaluate(state(open_=[alert]), sensor(kind, restore=True), NOW)
    assert others(result.decisions) == [
        ResolveAlert(device_id="d1", type=alert, reason=f"{kind} restored")
    ]
    assert alert not in result.state.open_alerts


def test_power_restore_resolves_power_loss() -> None:
    result = engine.evaluate(state(open_=[AlertType.POWER_LOSS]), sensor("power_restore"), NOW)
    assert others(result.decisions) == [
        ResolveAlert(device_id="d1", type=AlertType.POWER_LOSS, reason="power_restore")
    ]


def test_a_fall_cancelled_within_the_window_is_withdrawn() -> None:
    fallen = engine.evaluate(state("fall-detector"), sensor("fall", at=NOW), NOW).state
    in_time = NOW + timedelta(seconds=30)
    result = engine.evaluate(fallen, sensor("cancel", at=in_time), in_time)
    assert others(result.decisions) == [
        CancelAlert(
            device_id="d1",
            type=AlertType.FALL,
            reason="cancelled on the device within the cancel window",
        )
    ]
    assert AlertType.FALL not in result.state.open_alerts


def test_a_fall_cancelled_too_late_stays_and_the_dispatcher_sees_the_cancel() -> None:
    fallen = engine.evaluate(state("fall-detector"), sensor("fall", at=NOW), NOW).state
    too_late = NOW + timedelta(seconds=31)
    decisions = engine.evaluate(fallen, sensor("cancel", at=too_late), too_late).decisions
    assert others(decisions) == [
        NoteOnAlert(device_id="d1", type=AlertType.FALL, action="cancel_after_window")
    ]


def test_a_cancel_with_no_fall_does_nothing() -> None:
    assert others(engine.evaluate(state(), sensor("cancel"), NOW).decisions) == []


def telemetry(celsius: float) -> TelemetryReport:
    return TelemetryReport(
        device_id="d1", received_at=NOW, occurred_at=NOW, metrics={"temperature_c": celsius}
    )


@pytest.mark.parametrize(
    ("celsius", "open_", "expected_raise", "expected_resolve"),
    [
        (22.0, [], [], []),
        (35.0, [], [AlertType.HEAT], []),
        (34.5, [AlertType.HEAT], [], []),  # inside the hysteresis: stays open
        (33.9, [AlertType.HEAT], [], [AlertType.HEAT]),
        (8.0, [], [AlertType.COLD], []),
        (8.5, [AlertType.COLD], [], []),
        (9.1, [AlertType.COLD], [], [AlertType.COLD]),
    ],
)
def test_temperature_thresholds_with_hysteresis(
    celsius: float,
    open_: list[AlertType],
    expected_raise: list[AlertType],
    expected_resolve: list[AlertType],
) -> None:
    decisions = engine.evaluate(
        state("temperature-sensor", open_), telemetry(celsius), NOW
    ).decisions
    assert [a for a, _ in raised(decisions)] == expected_raise
    assert [d.type for d in decisions if isinstance(d, ResolveAlert)] == expected_resolve


def beat(battery: float, retained: bool = False) -> Heartbeat:
    return Heartbeat(
        device_id="d1", received_at=NOW, occurred_at=NOW, battery=battery, retained=retained
    )


def test_battery_at_the_models_low_threshold_raises_once_and_resolves_with_hysteresis() -> None:
    low = RulesEngine().catalogue["sos-pendant"].battery
    assert low is not None
    at_low = engine.evaluate(state(), beat(low.low_pct), NOW)
    assert [a for a, _ in raised(at_low.decisions)] == [AlertType.LOW_BATTERY]
    again = engine.evaluate(at_low.state, beat(low.low_pct - 1), NOW)
    assert raised(again.decisions) == []  # open already: no second alert, no count
    barely = engine.evaluate(again.state, beat(low.low_pct + 1), NOW)
    assert others(barely.decisions) == []
    recharged = engine.evaluate(barely.state, beat(low.low_pct + 5), NOW)
    assert [d.type for d in others(recharged.decisions)] == [AlertType.LOW_BATTERY]


def test_a_mains_powered_model_has_no_battery_rule() -> None:
    assert raised(engine.evaluate(state("zigbee-gateway"), beat(1), NOW).decisions) == []


def test_a_device_heard_from_again_resolves_its_offline_alert() -> None:
    result = engine.evaluate(state(open_=[AlertType.DEVICE_OFFLINE]), beat(90), NOW)
    assert others(result.decisions) == [
        ResolveAlert(
            device_id="d1",
            type=AlertType.DEVICE_OFFLINE,
            reason="the device was heard from again",
        )
    ]


def test_retained_messages_and_last_wills_are_no_sign_of_life() -> None:
    offline = AvailabilityChanged(device_id="d1", received_at=NOW, occurred_at=NOW, online=False)
    replayed = AvailabilityChanged(
        device_id="d1", received_at=NOW, occurred_at=NOW, online=True, retained=True
    )
    for event in (offline, replayed, beat(90, retained=True)):
        result = engine.evaluate(state(open_=[AlertType.DEVICE_OFFLINE]), event, NOW)
        assert result.decisions == (), event


def test_priority_by_elder_category_and_by_configuration() -> None:
    disabled = engine.evaluate(state(categories=["disabled"]), sensor("water_leak"), NOW)
    assert raised(disabled.decisions) == [(AlertType.WATER_LEAK, Priority.CRITICAL)]
    custom = RulesEngine(RuleSet(priority={AlertType.LOW_BATTERY: Priority.MEDIUM}))
    assert raised(custom.evaluate(state(), sensor("low_battery"), NOW).decisions) == [
        (AlertType.LOW_BATTERY, Priority.MEDIUM)
    ]


def test_a_stuck_button_is_counted_up_to_the_rate_limit() -> None:
    rules = RuleSet.model_validate({"rate_limit": {"per_device_per_minute": 5}})
    limited = RulesEngine(rules)
    current = state()
    counted = 0
    for press in range(10):
        at = NOW + timedelta(seconds=press)
        sos = SosPressed(device_id="d1", received_at=at, occurred_at=at)
        result = limited.evaluate(current, sos, at)
        answers = [d for d in result.decisions if isinstance(d, RaiseAlert)]
        assert len(answers) == 1  # every press is answered (the device is told) …
        counted += answers[0].counted  # … but only the first five count
        current = result.state
    assert counted == 5
    a_minute_later = NOW + timedelta(seconds=70)
    sos = SosPressed(device_id="d1", received_at=a_minute_later, occurred_at=a_minute_later)
    (later,) = [
        d
        for d in limited.evaluate(current, sos, a_minute_later).decisions
        if isinstance(d, RaiseAlert)
    ]
    assert later.counted
    smoke = limited.evaluate(current, sensor("smoke", at=a_minute_later), a_minute_later)
    assert raised(smoke.decisions) == [(AlertType.SMOKE, Priority.CRITICAL)]  # a new type passes


def test_a_ten_press_sos_burst_is_ten_occurrences_of_one_alert() -> None:
    current = state()
    decisions: list[Decision] = []
    for press in range(10):
        at = NOW + timedelta(seconds=press)
        result = engine.evaluate(
            current, SosPressed(device_id="d1", received_at=at, occurred_at=at), at
        )
        decisions += result.decisions
        current = result.state
    assert len(raised(decisions)) == 10  # the store counts them into one alert
    assert list(current.open_alerts) == [AlertType.SOS]


def with_status(status: str, model: str = "smoke-detector") -> DeviceState:
    return DeviceState(
        device_id="d1",
        device=DeviceInfo(device_id="d1", model=model, elder_id=None, status=status),
    )


def test_a_retired_device_raises_only_sos_and_one_in_maintenance_no_technical_alert() -> None:
    sos = SosPressed(device_id="d1", received_at=NOW, occurred_at=NOW)
    assert raised(engine.evaluate(with_status("retired"), sensor("smoke"), NOW).decisions) == []
    assert [a for a, _ in raised(engine.evaluate(with_status("retired"), sos, NOW).decisions)] == [
        AlertType.SOS
    ]
    maintenance = with_status("maintenance")
    assert raised(engine.evaluate(maintenance, sensor("tamper"), NOW).decisions) == []
    assert raised(engine.evaluate(maintenance, beat(1), NOW).decisions) == []
    assert [a for a, _ in raised(engine.evaluate(maintenance, sensor("smoke"), NOW).decisions)] == [
        AlertType.SMOKE
    ]


# Each model's low battery level and the level that resolves it: the edges to hold equal.
_THRESHOLDS = sorted(
    {
        level
        for model in CATALOGUE
        if (battery := CATALOGUE.get(model).battery) is not None
        for level in (battery.low_pct, battery.low_pct + engine.rules.battery.hysteresis_pct)
    }
)


def _the_whole_way(state: DeviceState, event: Heartbeat) -> Any:
    run = RulesEngine()
    run._quiet_heartbeat = lambda _state, _event: None  # type: ignore[method-assign]
    return run.evaluate(state, event, NOW)


@given(
    model=st.sampled_from(["sos-pendant", "smoke-detector", "zigbee-gateway", "watch-4g"]),
    status=st.sampled_from(["active", "maintenance", "retired"]),
    registered=st.booleans(),
    open_=st.lists(st.sampled_from(list(AlertType)), max_size=2),
    recent=st.lists(st.integers(0, 120).map(lambda s: NOW - timedelta(seconds=s)), max_size=2),
    battery=st.none() | st.sampled_from(_THRESHOLDS) | st.integers(0, 100) | st.floats(0, 100),
    retained=st.booleans(),
)
def test_a_quiet_heartbeat_is_decided_as_the_whole_way_decides(
    model: str,
    status: str,
    registered: bool,
    open_: list[AlertType],
    recent: list[datetime],
    battery: float | None,
    retained: bool,
) -> None:
    info = DeviceInfo(device_id="d1", model=model, elder_id=None, status=status)
    before = DeviceState(
        device_id="d1",
        device=info if registered else None,
        open_alerts={a: OpenAlert(type=a, since=EARLIER) for a in open_},
        recent=tuple(recent),
    )
    beat = Heartbeat(
        device_id="d1", received_at=NOW, occurred_at=NOW, battery=battery, retained=retained
    )
    quick, whole = engine.evaluate(before, beat, NOW), _the_whole_way(before, beat)
    assert quick == whole
    assert (quick.state is before) == (whole.state is before)


@pytest.mark.parametrize("model", list(CATALOGUE))
def test_a_quiet_heartbeat_at_each_models_battery_edges(model: str) -> None:
    before = state(model)
    for level in [None, 0, 9.5, *_THRESHOLDS, *(t - 0.5 for t in _THRESHOLDS), 100]:
        beat = Heartbeat(device_id="d1", received_at=NOW, occurred_at=NOW, battery=level)
        assert engine.evaluate(before, beat, NOW) == _the_whole_way(before, beat), level


def test_the_quiet_way_is_taken_by_a_plain_heartbeat() -> None:
    beat = Heartbeat(device_id="d1", received_at=NOW, occurred_at=NOW, battery=90)
    assert engine._quiet_heartbeat(state(), beat) is not None
    low = Heartbeat(device_id="d1", received_at=NOW, occurred_at=NOW, battery=10)
    assert engine._quiet_heartbeat(state(), low) is None
