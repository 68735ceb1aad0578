"""The traffic and the checks of `anxin bench same-work`, without running it."""

from __future__ import annotations

import json
from pathlib import Path

from simulators.bench import PhaseResult
from simulators.bench_same_work import (
    PUBLISHERS,
    SameWorkOptions,
    SameWorkReport,
    node_red_missing,
    write_heartbeats,
)


def test_heartbeats_are_spread_over_the_publishers_one_in_a_hundred_low(tmp_path: Path) -> None:
    files = write_heartbeats(tmp_path, 2010)

    assert len(files) == PUBLISHERS
    beats = [[json.loads(line) for line in path.read_text().splitlines()] for path in files]
    assert sum(map(len, beats)) == 2010
    assert sorted(beat["seq"] for device in beats for beat in device) == list(range(2010))
    assert sum(beat["battery"] == 10 for device in beats for beat in device) == 21
    for device in beats:  # each its own point: no two of a device at the same millisecond
        assert len({beat["ts"] for beat in device}) == len(device)


def _report(counted: int, alerts: int) -> SameWorkReport:
    options = SameWorkOptions(messages=1000)
    floor = PhaseResult(name="floor", published=1000, counted=1000, msgs_per_s=500.0)
    anxin = PhaseResult(name="anxin", published=1000, counted=counted, msgs_per_s=250.0)
    anxin.extra.update(alerts=alerts, expected_alerts=options.expected_alerts)
    return SameWorkReport(options=options, phases=[floor, anxin])


def test_a_run_that_did_the_whole_work_passes_its_checks() -> None:
    report = _report(counted=1000, alerts=10)

    assert report.failures() == []
    assert report.ratios("floor")["msgs_per_s"] == 0.5
    assert report.ratios("node-red") == {"msgs_per_s": None, "cpu_us_per_msg": None}


def test_a_missing_point_or_alert_fails_the_checks() -> None:
    assert _report(counted=999, alerts=10).failures() == ["anxin: 999 of 1,000 points"]
    assert _report(counted=1000, alerts=9).failures() == ["anxin: 9 alerts, 10 expected"]


def test_node_red_is_skipped_with_a_reason(tmp_path: Path) -> None:
    assert node_red_missing(None) == "left out (--no-node-red)"
    assert f"not installed in {tmp_path}" in (node_red_missing(tmp_path) or "")
