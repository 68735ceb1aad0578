"""Measured, not asserted: time from `mosquitto_pub` of an SOS to the alert in the API.

Run with `make bench`. Each of 20 rounds publishes an SOS for a new device with Debian's
mosquitto_pub (process start included) and polls GET /api/v1/alerts until the alert is there.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin

ROUNDS = 20


@pytest.mark.bench
def test_sos_publish_to_api_latency(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("bench", "bench-password")
    latencies_ms: list[float] = []
    with running_anxin(setup), httpx.Client(base_url=setup.api_url) as client:
        token = setup.token("bench", "bench-password")
        headers = {"Authorization": f"Bearer {token}"}
        for round_ in range(ROUNDS):
            device_id = f"bench-{round_:02d}"
            started = time.perf_counter()
            mosquitto_pub(mosquitto.port, f"anxin/v1/{device_id}/sos", "{}")
            while True:
                items = client.get("/api/v1/alerts?limit=200", headers=headers).json()["items"]
                if any(a["device_id"] == device_id for a in items):
                    break
                if time.perf_counter() - started > 10:
                    pytest.fail(f"the SOS of {device_id} did not appear within 10 s")
            latencies_ms.append((time.perf_counter() - started) * 1000)
    figures = {
        "rounds": ROUNDS,
        "median_ms": round(statistics.median(latencies_ms), 1),
        "min_ms": round(min(latencies_ms), 1),
        "max_ms": round(max(latencies_ms), 1),
        "p90_ms": round(statistics.quantiles(latencies_ms, n=10)[-1], 1),
    }
    print("\nSOS mosquitto_pub → visible in GET /api/v1/alerts:", json.dumps(figures))
    assert len(latencies_ms) == ROUNDS
