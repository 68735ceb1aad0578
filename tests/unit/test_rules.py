from __future__ import annotations

from pathlib import Path

import pytest

from alerting.model import AlertType, Priority
from alerting.rules import RulesError, RuleSet, load_rules


def test_the_packaged_defaults_agree_with_the_code() -> None:
    packaged, coded = load_rules(), RuleSet()
    assert (packaged.fall, packaged.temperature, packaged.battery, packaged.rate_limit) == (
        coded.fall,
        coded.temperature,
        coded.battery,
        coded.rate_limit,
    )
    assert packaged.priority_of(AlertType.COLD, frozenset({"advanced_age"})) is Priority.CRITICAL
    assert packaged.priority_of(AlertType.COLD) is Priority.HIGH


def test_a_deployment_file_changes_only_what_it_names(tmp_path: Path) -> None:
    mine = tmp_path / "rules.toml"
    mine.write_text('[fall]\ncancel_window_s = 60\n[priority]\nlow_battery = "medium"\n')
    rules = load_rules(mine)
    assert rules.fall.cancel_window_s == 60
    assert rules.temperature.heat_c == 35.0
    assert rules.priority_of(AlertType.LOW_BATTERY) is Priority.MEDIUM
    assert rules.priority_of(AlertType.WATER_LEAK, frozenset({"disabled"})) is Priority.CRITICAL


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fall]\ncancel_window_s = -1\n", "rules: fall.cancel_window_s: Input should be greater"),
        ("[fall]\nwindow = 3\n", "rules: fall.window: Extra inputs are not permitted"),
        ('[priority]\nsos = "urgent"\n', "rules: priority.sos: Input should be"),
        ('[priority]\nexplosion = "high"\n', "rules: priority.explosion"),
        ("[temperature]\nheat_c = 9.0\n", "cold_c + 2 × hysteresis_c must stay below heat_c"),
        ("[fall\n", "rules file"),
    ],
)
def test_a_bad_setting_is_named(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(text)
    with pytest.raises(RulesError) as caught:
        load_rules(bad)
    assert message in str(caught.value)
