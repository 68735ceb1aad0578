"""Measured, not asserted: a simulated hub's alarm over DC-09 to the alert in the API.

Run with `make bench` (or `.venv/bin/pytest -m bench -s tests/bench/test_dc09_latency.py`).
Each of 20 rounds, a hub (its own account, so a new alert each time) sends an ADM-CID 1101
over TCP to `anxin gateway dc09`; measured: until the hub has its ACK (the alert is stored by
then), and until GET /api/v1/alerts lists the alert.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from simulators.dc09_hub import HubClient, HubFrames
from tests.integration.test_dc09_gateway import running_gateway
from tests.support.mosquitto import Mosquitto
from tests.support.service import anxin_env, running_anxin

ROUNDS = 20


def _figures(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "p90_ms": round(statistics.quantiles(samples, n=10)[-1], 1),
    }


@pytest.mark.bench
def test_dc09_alarm_to_api_latency(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("bench", "bench-password")
    to_ack: list[float] = []
    to_api: list[float] = []
    with running_anxin(setup), running_gateway(setup, mosquitto) as gateway:
        headers = {"Authorization": f"Bearer {setup.token('bench', 'bench-password')}"}

        async def rounds() -> None:
            api = httpx.AsyncClient(base_url=setup.api_url)
            client = HubClient("127.0.0.1", gateway.port, max_attempts=1)
            for round_ in range(ROUNDS):
                account = f"BENCH{round_:02d}"
                frame = HubFrames(account=account).sos(datetime.now(UTC))
                started = time.perf_counter()
                delivery = await client.deliver(frame)
                to_ack.append((time.perf_counter() - started) * 1000)
                assert delivery.reply == "ACK"
                while True:
                    answer = await api.get("/api/v1/alerts?limit=200", headers=headers)
                    items = answer.json()["items"]
                    if any(a["device_id"] == account for a in items):
                        break
                    if time.perf_counter() - started > 10:
                        pytest.fail(f"the SOS of {account} did not appear within 10 s")
                to_api.append((time.perf_counter() - started) * 1000)
            await client.close()
            await api.aclose()

        asyncio.run(rounds())
    print(
        "\nDC-09 hub SOS → ACK:", json.dumps({"rounds": ROUNDS, **_figures(to_ack)}),
        "\nDC-09 hub SOS → visible in GET /api/v1/alerts:",
        json.dumps({"rounds": ROUNDS, **_figures(to_api)}),
    )  # fmt: skip
    assert len(to_api) == ROUNDS
