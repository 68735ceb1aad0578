"""`anxin bench same-work` small (2,000 heartbeats, Node-RED left out): its own Mosquitto and
influxd, every heartbeat a point, every low battery an alert, and figures that agree with each
other. The measuring itself is the command, not this test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.bench_same_work import py_spy_path
from tests.support.service import anxin_env

MESSAGES = 2000


def test_same_work_stores_every_heartbeat_and_reports_consistent_figures(tmp_path: Path) -> None:
    # The bench uses a broker and databases of its own, whatever is configured.
    setup = anxin_env(tmp_path, ANXIN_MQTT_URL="mqtt://127.0.0.1:1")
    result = setup.cli(
        *("bench", "same-work", "--json", "--no-node-red", "--messages", str(MESSAGES)),
        *("--timeout", "30"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)

    assert report["messages"] == MESSAGES
    assert report["expected_alerts"] == MESSAGES // 100
    assert report["failures"] == []
    assert report["phases"]["node-red"] == {"skipped": "left out (--no-node-red)"}
    floor, anxin = report["phases"]["floor"], report["phases"]["anxin"]
    assert floor["published"] == floor["counted"] == MESSAGES
    assert anxin["published"] == anxin["counted"] == MESSAGES
    assert anxin["alerts"] == anxin["expected_alerts"] == MESSAGES // 100
    assert "alerts" not in floor  # the floor raises none
    # At most 1000 messages a batch; the readiness probe's batch too.
    assert MESSAGES // 1000 < anxin["stored_batches"] <= MESSAGES + 1
    assert "stored_batches" not in floor
    for phase in (floor, anxin):
        assert phase["msgs_per_s"] == round(phase["counted"] / phase["seconds"], 1) > 0
        assert phase["cpu_us_per_msg"] == round(phase["cpu_s"] * 1e6 / phase["counted"], 1) > 0
        assert 0 < phase["published_s"] <= phase["seconds"]
    ratios = report["anxin_to_floor"]
    assert ratios["msgs_per_s"] == round(anxin["msgs_per_s"] / floor["msgs_per_s"], 2)
    assert ratios["cpu_us_per_msg"] == round(anxin["cpu_us_per_msg"] / floor["cpu_us_per_msg"], 2)
    assert report["anxin_to_node_red"] == {"msgs_per_s": None, "cpu_us_per_msg": None}
    assert len(report["load_average_before"]) == len(report["load_average_after"]) == 3
    assert not setup.database_path.exists()


def test_profile_writes_py_spys_stacks_of_the_anxin_phase(tmp_path: Path) -> None:
    if py_spy_path() is None:
        pytest.skip("py-spy is not installed (pip install py-spy)")
    setup = anxin_env(tmp_path, ANXIN_MQTT_URL="mqtt://127.0.0.1:1")
    profile = tmp_path / "serve.txt"
    result = setup.cli(
        *("bench", "same-work", "--json", "--no-node-red", "--messages", str(MESSAGES)),
        *("--timeout", "30", "--profile", str(profile)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    stacks = profile.read_text().splitlines()
    # Collapsed stacks of serve's threads, each ending in a sample count.
    assert any("anxin-store" in line and "IngestPipeline" in line for line in stacks)
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in stacks)
