"""`anxin bench ingest` with tiny numbers: its own Mosquitto, every message counted, the JSON
shape of contract §3. The measuring itself is a command (`anxin bench ingest`), not a test."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.service import ANXIN

MESSAGES = 300
RATE = 200
DURATION_S = 1.5


def test_bench_ingest_counts_every_message_and_reports_json(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ANXIN_LOG_FORMAT": "json",
        "ANXIN_VAR_DIR": str(tmp_path / "var"),
        # The bench uses a broker and a database of its own, whatever is configured.
        "ANXIN_MQTT_URL": "mqtt://127.0.0.1:1",
        "ANXIN_DATABASE_URL": f"sqlite:///{tmp_path / 'not-used.db'}",
    }
    result = subprocess.run(
        [
            ANXIN, "bench", "ingest", "--json",
            "--duration", str(DURATION_S),
            "--rate", str(RATE),
            "--messages", str(MESSAGES),
            "--devices", "20",
            "--sos-interval", "0.1",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    for key in (
        "baseline_msgs_per_s",
        "anxin_msgs_per_s",
        "ratio",
        "sos_latency_ms_p50",
        "sos_latency_ms_p99",
    ):
        assert isinstance(report[key], float), key
    baseline, anxin, sos = (report["phases"][name] for name in ("baseline", "anxin", "sos"))
    assert baseline["published"] == baseline["counted"] == MESSAGES
    assert anxin["published"] == anxin["counted"] == MESSAGES
    assert report["ratio"] == round(report["anxin_msgs_per_s"] / report["baseline_msgs_per_s"], 3)
    for phase in (baseline, anxin):
        assert phase["cpu_us_per_msg"] == round(phase["cpu_s"] * 1e6 / phase["counted"], 1) > 0
    # Heartbeats at RATE for DURATION_S, and an SOS every 0.1 s: every one stored and acked.
    assert sos["published"] >= RATE * DURATION_S * 0.9
    assert sos["counted"] == sos["published"] + report["sos_sent"]
    assert report["sos_sent"] >= 10
    assert report["sos_committed"] == report["sos_acked"] == report["sos_sent"]
    assert 0 < report["sos_latency_ms_p50"] <= report["sos_latency_ms_p99"]
    assert not list(tmp_path.glob("not-used.db*"))
