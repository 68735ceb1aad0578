"""Measured, not asserted: an SOS fanned out to many alert streams of one ``anxin serve``.

Run with `make bench` (or `pytest -m bench tests/bench/test_stream_fanout.py -s`). STREAMS
dispatchers stream; each of ROUNDS SOS from a new device is published with mosquitto_pub
(process start included); the time is taken when the last stream has its `alert.created`.
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.api_world import SseReader, event_stream
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin

STREAMS = 100
ROUNDS = 10


@pytest.mark.bench
def test_sos_to_every_stream(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("bench", "bench-password")
    latencies_ms: list[float] = []
    with running_anxin(setup), ExitStack() as streams:
        headers = {"Authorization": f"Bearer {setup.token('bench', 'bench-password')}"}
        url = f"{setup.api_url}/api/v1/alerts/stream"
        readers: list[SseReader] = [
            streams.enter_context(event_stream(url, headers)) for _ in range(STREAMS)
        ]
        for n in range(ROUNDS):
            started = time.monotonic()
            mosquitto_pub(mosquitto.port, f"anxin/v1/fanout-{n}/sos", "{}")
            for reader in readers:
                assert reader.next(within_s=30).event == "alert.created"
            latencies_ms.append((time.monotonic() - started) * 1000)
    print(
        json.dumps(
            {
                "streams": STREAMS,
                "rounds": ROUNDS,
                "sos_to_last_stream_ms_p50": round(statistics.median(latencies_ms), 1),
                "sos_to_last_stream_ms_max": round(max(latencies_ms), 1),
            }
        )
    )
