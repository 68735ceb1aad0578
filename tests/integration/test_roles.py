"""Each process role on its own: ingest and scheduler serve health, readiness and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin, wait_until


def test_ingest_alone_is_watchable_and_serves_no_api(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(
        tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url, ANXIN_DEBUG_MALLOC_METRICS="1"
    )
    assert setup.cli("db", "upgrade").returncode == 0
    with running_anxin(setup, command="ingest"):
        ready = httpx.get(f"{setup.api_url}/readyz").json()
        mosquitto_pub(mosquitto.port, "anxin/v1/lonely-1/sos", "{}")
        counted = wait_until(
            lambda: (
                text
                if 'anxin_messages_total{kind="sos"} 1.0'
                in (text := httpx.get(f"{setup.api_url}/metrics").text)
                else None
            )
        )
        api = httpx.get(f"{setup.api_url}/api/v1/alerts")
    assert ready == {"status": "ready", "checks": {"database": True, "broker": True}}
    assert counted
    # Native memory beside Python's (anxin/native_memory.py): the SQLite that stored the SOS.
    sqlite = _sample(counted, "anxin_sqlite_memory_bytes")
    assert sqlite > 100_000
    assert 0 < _sample(counted, "anxin_sqlite_page_cache_bytes") <= sqlite
    assert _sample(counted, "anxin_malloc_bytes", state="in_use") > sqlite
    assert api.status_code == 404


def test_the_scheduler_alone_is_watchable(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    assert setup.cli("db", "upgrade").returncode == 0
    with running_anxin(setup, command="scheduler"):
        ready = httpx.get(f"{setup.api_url}/readyz").json()
    assert ready == {"status": "ready", "checks": {"database": True}}


def _sample(metrics: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{name} {labels} not in /metrics")
