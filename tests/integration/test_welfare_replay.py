"""The inactivity rule in a virtual-time replay: elders living alone who sleep through the night
raise nothing; those who stop moving are looked for the same day (issue 15)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.service import anxin_env

ZONE = ZoneInfo("Asia/Shanghai")
DAYS = 2


def scenario(days: int, homes: int, stop: str) -> str:
    """``homes`` elders living alone, a motion sensor each, no movement 20:30-07:00 every
    night; the elders ``stop`` stop moving on the second day at 08:00.
    scenarios/quiet_week.yaml is the same for a week and 100 elders."""
    nights = "".join(
        f"  - at: {day}d20h30m\n    everyone: true\n    quiet: {{for: 10h30m}}\n    expect: []\n"
        for day in range(days)
    )
    return (
        "name: quiet-nights\n"
        "start: 2026-03-02T00:00:00+08:00\n"
        f"duration: {days}d\n"
        "device_prefix: qn\n"
        "fleet:\n"
        f"  - homes: {homes}\n"
        "    models: [pir-motion]\n"
        "    community: 张家口市/张北县/花园街道/幸福社区\n"
        "    categories: [living_alone]\n"
        "timeline:\n"
        "  - at: '00:00'\n    everyone: true\n    quiet: {for: 7h}\n    expect: []\n"
        f"{nights}"
        f"  - at: 1d8h\n    elders: {stop}\n    quiet: {{for: {days}d}}\n"
        "    expect: [{type: inactivity, status: new, count: 1}]\n"
    )


def test_nights_asleep_raise_nothing_and_a_silent_day_is_found_that_evening(
    tmp_path: Path,
) -> None:
    setup = anxin_env(tmp_path / "anxin")
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario(DAYS, homes=6, stop="1-2"), encoding="utf-8")
    traffic = tmp_path / "traffic.jsonl"
    made = setup.cli(
        "simulate", "--scenario", str(path), "--registry", "fleet.csv", "--out", str(traffic)
    )
    assert made.returncode == 0, made.stderr
    assert setup.cli("devices", "import", "fleet.csv").returncode == 0
    replay = setup.cli(
        "replay", str(traffic), "--virtual", "--tick", "10m", "--json", "--expect", str(path)
    )
    # --expect: any other alert (a morning's inactivity on a sleeping elder) is a difference.
    assert replay.returncode == 0, replay.stderr
    alerts = [json.loads(line) for line in replay.stdout.splitlines() if line.strip()]
    assert sorted(a["device_id"] for a in alerts) == [
        "qn-00001-pir-motion",
        "qn-00002-pir-motion",
    ]
    for alert in alerts:
        # The last movement before 08:00 of the second day, 10 waking hours: that evening.
        raised = datetime.fromisoformat(alert["created_at"]).astimezone(ZONE)
        assert (raised.day, 17 <= raised.hour < 19) == (3, True), raised
