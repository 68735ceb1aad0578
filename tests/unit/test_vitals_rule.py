"""The [vitals] rule: heart rate or SpO2 that STAYS out of range raises `vital_signs`; a single
odd reading does not; a reading of 0 is no reading. Pure, through the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.decisions import NoteOnAlert, RaiseAlert
from alerting.engine import DeviceState, Evaluation, RulesEngine
from alerting.model import AlertType, Category, Priority
from alerting.rules import load_rules
from devices.events import SensorEvent, TelemetryReport
from devices.registry import DeviceInfo

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
engine = RulesEngine()


def start() -> DeviceState:
    device = DeviceInfo(device_id="w1", model="watch-4g", elder_id=3, elder_categories=frozenset())
    return DeviceState(device_id="w1", device=device)


def reading(minutes: float, **metrics: float) -> TelemetryReport:
    at = T0 + timedelta(minutes=minutes)
    return TelemetryReport(device_id="w1", received_at=at, occurred_at=at, metrics=metrics)


def run(readings: list[TelemetryReport], rules_engine: RulesEngine = engine) -> list[Evaluation]:
    state, out = start(), []
    for event in readings:
        evaluation = rules_engine.evaluate(state, event, event.received_at)
        state = evaluation.state
        out.append(evaluation)
    return out


def raised(evaluations: list[Evaluation]) -> list[int]:
    """At which readings a vital_signs alert was raised or counted."""
    return [
        i
        for i, e in enumerate(evaluations)
        for d in e.decisions
        if isinstance(d, RaiseAlert) and d.type is AlertType.VITAL_SIGNS
    ]


def test_heart_rate_that_stays_high_raises_once_it_has_lasted() -> None:
    evaluations = run([reading(m, heart_rate=150) for m in (0, 2, 4, 6)])
    # 3 readings by minute 4, but not yet 5 min (300 s) apart; at minute 6 both hold.
    assert raised(evaluations) == [3]
    alert = next(d for d in evaluations[3].decisions if isinstance(d, RaiseAlert))
    assert (alert.category, alert.priority) == (Category.EMERGENCY, Priority.HIGH)
    assert alert.attributes["metric"] == "heart_rate"
    assert alert.attributes["readings"] == 4
    assert alert.attributes["out_of_range_since"] == T0.isoformat()


def test_one_reading_back_in_range_starts_the_count_again() -> None:
    minutes = [(0, 150), (3, 150), (5, 80), (6, 150), (8, 150), (10, 150)]
    assert raised(run([reading(m, heart_rate=v) for m, v in minutes])) == []


def test_low_spo2_stays_and_is_noted_when_back() -> None:
    evaluations = run([*(reading(m, spo2=85) for m in (0, 3, 6)), reading(9, spo2=97)])
    assert raised(evaluations) == [2]
    notes = [d for d in evaluations[3].decisions if isinstance(d, NoteOnAlert)]
    assert [(n.type, n.action) for n in notes] == [(AlertType.VITAL_SIGNS, "back_in_range")]


def test_zero_is_no_reading_and_in_range_is_nothing() -> None:
    assert raised(run([reading(m, heart_rate=0, spo2=0) for m in range(0, 30, 3)])) == []
    assert raised(run([reading(m, heart_rate=72, spo2=97) for m in range(0, 30, 3)])) == []
    # A zero between bad readings neither resets nor counts.
    bad = [reading(0, heart_rate=30), reading(3, heart_rate=0), reading(4, heart_rate=30)]
    assert raised(run([*bad, reading(6, heart_rate=30)])) == [3]


def test_the_rules_file_sets_the_bands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rules.toml"
    path.write_text("[vitals]\nheart_rate_high = 100\nreadings = 1\nsustained_s = 0\n")
    strict = RulesEngine(load_rules(path))
    assert raised(run([reading(0, heart_rate=110)], strict)) == [0]
    assert raised(run([reading(0, heart_rate=110)])) == []


def test_a_device_alarm_event_is_an_emergency_a_person_closes() -> None:
    event = SensorEvent(device_id="w1", received_at=T0, occurred_at=T0, type="device_alarm")
    decisions = engine.evaluate(start(), event, T0).decisions
    alert = next(d for d in decisions if isinstance(d, RaiseAlert))
    assert (alert.type, alert.category, alert.priority) == (
        AlertType.DEVICE_ALARM,
        Category.EMERGENCY,
        Priority.HIGH,
    )
