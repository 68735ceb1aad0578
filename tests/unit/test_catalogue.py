from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from devices.catalogue import (
    CATALOGUE,
    BatteryThresholds,
    Catalogue,
    CatalogueError,
    DeviceModel,
    apply_overrides,
)
from devices.codec import EVENT_TYPES

REQUIRED = {
    "sos-pendant", "sos-button", "pull-cord", "fall-detector", "4g-elder-phone",
    "smoke-detector", "gas-detector", "co-detector", "water-leak", "door-contact",
    "pir-motion", "bed-sensor", "temperature-sensor", "zigbee-gateway",
}  # fmt: skip
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_required_model_is_listed_with_a_chinese_name() -> None:
    assert set(CATALOGUE) >= REQUIRED
    for model in CATALOGUE.values():
        assert CJK.search(model.display_name), model.name


def test_models_raise_only_contract_events() -> None:
    for model in CATALOGUE.values():
        assert model.events <= EVENT_TYPES, model.name
        assert model.events, model.name


def test_sos_capable_models_are_marked() -> None:
    assert CATALOGUE.sos_models() == {
        "sos-pendant", "sos-button", "pull-cord", "4g-elder-phone", "dc09-panel",
    }  # fmt: skip
    presses = {name for name, model in CATALOGUE.items() if model.press_means_sos}
    assert presses == {"sos-pendant", "sos-button", "pull-cord"}
    assert CATALOGUE["pull-cord"].sos_trigger == "pullcord"
    assert CATALOGUE["smoke-detector"].sos is False


def test_battery_thresholds_follow_the_power_source() -> None:
    for model in CATALOGUE.values():
        if model.mains_powered:
            assert model.battery is None, model.name
        else:
            assert model.battery is not None, model.name
            assert 0 <= model.battery.critical_pct < model.battery.low_pct <= 100
    assert {name for name, m in CATALOGUE.items() if m.mains_powered} == {
        "fall-detector", "gas-detector", "zigbee-gateway", "dc09-panel",
    }  # fmt: skip


def test_heartbeats_are_realistic() -> None:
    # 4G wearables and phones: minutes to an hour; Zigbee battery sensors: about an hour.
    assert 300 <= CATALOGUE["sos-pendant"].heartbeat_s <= 3600
    assert 300 <= CATALOGUE["4g-elder-phone"].heartbeat_s <= 3600
    for name in ("water-leak", "door-contact", "pir-motion", "temperature-sensor"):
        assert 3000 <= CATALOGUE[name].heartbeat_s <= 3600, name
    for model in CATALOGUE.values():
        if model.mains_powered:
            assert model.heartbeat_s <= 600, model.name
        assert model.offline_after_missed >= 2, model.name
    assert CATALOGUE["sos-pendant"].offline_after_s == 600 * 3


def test_the_catalogue_is_frozen() -> None:
    with pytest.raises(TypeError):
        CATALOGUE["sos-pendant"] = CATALOGUE["pull-cord"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATALOGUE["sos-pendant"].heartbeat_s = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        CATALOGUE.extra = 1  # type: ignore[attr-defined]


def test_overrides_give_a_new_catalogue_and_leave_the_old_one() -> None:
    changed = apply_overrides(
        {"sos-pendant": {"heartbeat_s": 300}, "smoke-detector": {"heartbeat_s": 86400,
                                                                 "offline_after_missed": 2}}
    )  # fmt: skip
    assert changed["sos-pendant"].heartbeat_s == 300
    assert changed["smoke-detector"].offline_after_s == 2 * 86400
    assert CATALOGUE["sos-pendant"].heartbeat_s == 600
    assert changed["pull-cord"] == CATALOGUE["pull-cord"]
    assert isinstance(changed, Catalogue)
    assert apply_overrides(None) is CATALOGUE
    assert apply_overrides({}) is CATALOGUE


def test_battery_overrides_keep_the_threshold_not_given() -> None:
    changed = apply_overrides({"door-contact": {"battery_low_pct": 40}})
    assert changed["door-contact"].battery == BatteryThresholds(low_pct=40, critical_pct=10)
    mains = apply_overrides(
        {"gas-detector": {"mains_powered": False, "battery_low_pct": 30,
                          "battery_critical_pct": 15}}
    )  # fmt: skip
    assert mains["gas-detector"].battery == BatteryThresholds(low_pct=30, critical_pct=15)


def test_overrides_may_change_names_and_events() -> None:
    changed = apply_overrides({"bed-sensor": {"display_name": "床垫", "events": ["bed_exit"]}})
    assert changed["bed-sensor"].display_name == "床垫"
    assert changed["bed-sensor"].events == {"bed_exit"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sos-pendent": {"heartbeat_s": 600}}, "unknown device model 'sos-pendent'"),
        ({"sos-pendant": {"heartbeat": 600}}, "'sos-pendant': heartbeat: Extra inputs"),
        ({"sos-pendant": {"heartbeat_s": -5}}, "'sos-pendant': heartbeat_s: Input should be"),
        ({"sos-pendant": {"heartbeat_s": "600"}}, "'sos-pendant': heartbeat_s:"),
        ({"sos-pendant": {"heartbeat_s": 600.5}}, "'sos-pendant': heartbeat_s:"),
        ({"pull-cord": {"offline_after_missed": 0}}, "'pull-cord': offline_after_missed:"),
        ({"water-leak": {"battery_low_pct": 5}}, "'water-leak': battery_low_pct, battery_crit"),
        ({"water-leak": {"battery_critical_pct": 101}}, "'water-leak': battery_critical_pct:"),
        ({"gas-detector": {"battery_low_pct": 20}}, "'gas-detector': battery_critical_pct: need"),
        ({"gas-detector": {"mains_powered": False}}, "'gas-detector': mains_powered:"),
        ({"co-detector": {"events": ["co", "explode"]}}, "'co-detector': events: not in the"),
        ({"co-detector": "loud"}, "device model 'co-detector': Input should be a valid dict"),
        (["sos-pendant"], "overrides: Input should be a valid dictionary"),
    ],
)
def test_bad_overrides_name_the_model_and_field(overrides: Any, message: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        apply_overrides(overrides)
    assert message in str(caught.value)


def test_a_model_must_be_coherent() -> None:
    base: dict[str, Any] = {
        "name": "x-1", "display_name": "某设备", "heartbeat_s": 60, "offline_after_missed": 3,
        "events": frozenset({"test"}), "battery": BatteryThresholds(low_pct=20, critical_pct=5),
    }  # fmt: skip
    DeviceModel(**base)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "X 1"}, "name"),
        ({"display_name": " "}, "display_name"),
        ({"heartbeat_s": 1}, "heartbeat_s"),
        ({"events": frozenset({"sos"})}, "events"),
        ({"press_means_sos": True}, "press_means_sos"),
        ({"sos": True, "sos_trigger": "telepathy"}, "sos_trigger"),
        ({"battery": None}, "mains_powered"),
    ]
    for bad, field in cases:
        with pytest.raises(ValueError, match=field):
            DeviceModel(**{**base, **bad})
    with pytest.raises(CatalogueError, match="listed twice"):
        Catalogue([DeviceModel(**base), DeviceModel(**base)])


def test_the_documented_table_matches_the_catalogue() -> None:
    text = (Path(__file__).parents[2] / "docs" / "devices.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0].strip("`") in CATALOGUE:
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(CATALOGUE)
    for name, cells in rows.items():
        model = CATALOGUE[name]
        assert cells[1] == model.display_name
        assert cells[2].startswith(f"{model.heartbeat_s} s")
        assert cells[3].startswith(f"{model.offline_after_missed} →")
        assert set(cells[4].split(", ")) == model.events
