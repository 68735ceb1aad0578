"""Each process role on its own: ingest and scheduler serve health, readiness and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin, wait_until


def test_ingest_alone_is_watchable_and_serves_no_api(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    assert setup.cli("db", "upgrade").returncode == 0
    with running_anxin(setup, command="ingest"):
        ready = httpx.get(f"{setup.api_url}/readyz").json()
        mosquitto_pub(mosquitto.port, "anxin/v1/lonely-1/sos", "{}")
        counted = wait_until(
            lambda: (
                'anxin_messages_total{kind="sos"} 1.0' in httpx.get(f"{setup.api_url}/metrics").text
                or None
            )
        )
        api = httpx.get(f"{setup.api_url}/api/v1/alerts")
    assert ready == {"status": "ready", "checks": {"database": True, "broker": True}}
    assert counted
    assert api.status_code == 404


def test_the_scheduler_alone_is_watchable(tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    assert setup.cli("db", "upgrade").returncode == 0
    with running_anxin(setup, command="scheduler"):
        ready = httpx.get(f"{setup.api_url}/readyz").json()
    assert ready == {"status": "ready", "checks": {"database": True}}
