"""Scenario files: what they become, and the errors a bad one gets (file, line, field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.model import AlertStatus, AlertType
from simulators.scenario import load_scenario
from simulators.scenario_file import ScenarioError, parse_duration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

HEAD = """\
name: test
start: 2026-03-02T00:00:00+08:00
duration: 6h
fleet:
  - homes: 3
    models: [sos-pendant, fall-detector, smoke-detector]
"""


def scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(scenario(tmp_path, text))
    return str(caught.value)


def test_the_sample_scenarios_load_with_their_expectations() -> None:
    night = load_scenario(SCENARIOS / "night_fall.yaml")
    assert len(night.devices) == 100
    fall = night.expected[("night-00017-fall-detector", AlertType.FALL)]
    assert fall.status is AlertStatus.NEW
    assert night.expected[("night-00004-sos-pendant", AlertType.FALL)].status is (
        AlertStatus.CANCELLED
    )
    for name in ("building_fire.yaml", "broker_outage.yaml", "day_1000.yaml"):
        assert load_scenario(SCENARIOS / name).plans


def test_a_time_of_day_is_not_read_as_a_base_60_number(tmp_path: Path) -> None:
    text = HEAD + "timeline:\n  - at: 03:10\n    elder: 2\n    sos: {}\n    expect: []\n"
    sc = load_scenario(scenario(tmp_path, text))
    (sos,) = [e for p in sc.plans for e in p.extra]
    assert sos.at.astimezone(sc.zone).strftime("%H:%M") == "03:10"


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        (
            "  - at: '01:00'\n    elder: 1\n    fall: {cancel_after: 10x}\n    expect: []\n",
            "s.yaml:10: timeline[0].fall.cancel_after: not a duration: '10x'",
        ),
        (
            "  - at: '01:00'\n    elder: 1\n    sos: {}\n    smoke: {}\n    expect: []\n",
            "s.yaml:8: timeline[0]: needs exactly one situation",
        ),
        (
            "  - at: '01:00'\n    sos: {}\n    expect: []\n",
            "timeline[0]: say whom it concerns",
        ),
        (
            "  - at: '01:00'\n    elder: 1\n    sos: {}\n",
            "s.yaml:8: timeline[0].expect: Field required",
        ),
        (
            "  - at: '01:00'\n    elder: 1\n    model: fall-detector\n"
            "    fall: {cancel_after: 10s}\n    expect: []\n",
            "none of its devices (fall-detector) can do fall",
        ),
        (
            "  - at: '07:00'\n    elder: 1\n    sos: {}\n    expect: []\n",
            "s.yaml:8: timeline[0].at: '07:00' is outside the scenario",
        ),
        (
            "  - at: '01:00'\n    elder: 9\n    sos: {}\n    expect: []\n",
            "timeline[0]: concerns no device of the fleet",
        ),
        (
            "  - at: '01:00'\n    elder: 1\n    sos: {}\n    expect: [{type: sauce}]\n",
            "s.yaml:11: timeline[0].expect[0].type: Input should be 'sos'",
        ),
    ],
)
def test_errors_name_the_line_and_the_field(tmp_path: Path, timeline: str, expected: str) -> None:
    assert expected in error_of(tmp_path, HEAD + "timeline:\n" + timeline)


def test_an_unknown_model_is_named_with_its_line(tmp_path: Path) -> None:
    text = HEAD.replace("smoke-detector", "smoke-detektor")
    assert "s.yaml:6: fleet[0].models: unknown model 'smoke-detektor'" in error_of(tmp_path, text)


def test_broken_yaml_is_one_clear_line(tmp_path: Path) -> None:
    assert "s.yaml:3: not valid YAML" in error_of(tmp_path, "name: x\nfleet: [\n  a: b: c\n")


def test_durations() -> None:
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration(2.5).total_seconds() == 2.5
    assert parse_duration("1d").total_seconds() == 86400
    # A bare number is seconds, as text too (the command line's `--duration 12`).
    assert parse_duration("12").total_seconds() == 12
    assert parse_duration(" 1.5 ").total_seconds() == 1.5
    assert parse_duration(12).total_seconds() == 12
    for bad in ("", "5x", "m", "-3"):
        with pytest.raises(ValueError, match=r"duration|negative"):
            parse_duration(bad)


def test_one_device_per_home_unless_a_model_is_named(tmp_path: Path) -> None:
    text = HEAD + (
        "timeline:\n"
        "  - at: '01:00'\n    elders: 1-3\n    fall: {}\n    expect: [{type: fall}]\n"
        "  - at: '02:00'\n    everyone: true\n    model: smoke-detector\n    smoke: {}\n"
        "    expect: [{type: smoke, count: 1}]\n"
    )
    sc = load_scenario(scenario(tmp_path, text))
    falls = sorted(d for d, t in sc.expected if t is AlertType.FALL)
    # The pendant comes first in each home and can report a fall.
    assert falls == [f"sim-0000{n}-sos-pendant" for n in (1, 2, 3)]
    smokes = sorted(d for d, t in sc.expected if t is AlertType.SMOKE)
    assert smokes == [f"sim-0000{n}-smoke-detector" for n in (1, 2, 3)]
