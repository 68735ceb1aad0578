"""Measured, not asserted: an SOS from a watch over TCP through ``anxin gateway watch`` to the
alert in the API, and to the AL reply at the watch.

Run with ``make bench`` (or ``.venv/bin/pytest -m bench -s tests/bench/test_watch_sos_latency.py``).
Each of 20 rounds: a new (unregistered) watch connects, says LK, and sends an AL with the SOS
bit; the clock runs from the AL's send until GET /api/v1/alerts lists its alert (polled), and
separately until the AL reply arrives (the gateway heard anxin's Ack received).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.service import anxin_env, running_anxin
from tests.support.watch import WatchSocket, alarm_content, running_gateway

ROUNDS = 20


@pytest.mark.bench
def test_watch_sos_to_api_latency(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("bench", "bench-password")
    listen, health = free_port(), free_port()
    to_api: list[float] = []
    to_reply: list[float] = []
    with (
        running_anxin(setup),
        running_gateway(setup, listen, ANXIN_API_PORT=str(health)),
        httpx.Client(base_url=setup.api_url) as client,
    ):
        headers = {"Authorization": f"Bearer {setup.token('bench', 'bench-password')}"}
        for round_ in range(ROUNDS):
            device_id = f"99000000{round_:02d}"
            watch = WatchSocket(listen, device_id)
            watch.send("LK")
            watch.wait_for(b"LK", within_s=5)
            started = time.perf_counter()
            watch.send(alarm_content("00010000"))
            listed = replied = None
            while listed is None or replied is None:
                if replied is None and any(
                    f.split(b"*", 3)[-1].startswith(b"AL") for f in watch.read(0.001)
                ):
                    replied = time.perf_counter()
                if listed is None:
                    items = client.get("/api/v1/alerts?limit=200", headers=headers).json()["items"]
                    if any(a["device_id"] == device_id for a in items):
                        listed = time.perf_counter()
                if time.perf_counter() - started > 15:
                    pytest.fail(f"the SOS of {device_id} did not come through within 15 s")
            to_api.append((listed - started) * 1000)
            to_reply.append((replied - started) * 1000)
            watch.close()

    def figures(values: list[float]) -> dict[str, float]:
        return {
            "median_ms": round(statistics.median(values), 1),
            "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1),
            "p90_ms": round(statistics.quantiles(values, n=10)[-1], 1),
        }

    print(
        "\nwatch AL over TCP → alert in GET /api/v1/alerts:",
        json.dumps({"rounds": ROUNDS, **figures(to_api)}),
        "\nwatch AL over TCP → AL reply at the watch:",
        json.dumps({"rounds": ROUNDS, **figures(to_reply)}),
    )
    assert len(to_api) == ROUNDS
