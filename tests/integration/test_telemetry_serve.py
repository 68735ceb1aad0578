"""`anxin db upgrade` and `anxin serve` with InfluxDB, as an operator runs them: real Mosquitto,
real influxd, anxin as a subprocess. And the promise behind it all: a slow InfluxDB never
delays an SOS."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anxin.database import open_database, upgrade
from devices.elders import ElderRow
from devices.registry import register_device
from ingest.telemetry.spool import Spool
from tests.support.influx import InfluxServer
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
COMMUNITY = "张家口市/张北县/花园街道/幸福社区"


def register(setup: AnxinEnv, device_id: str) -> None:
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        session.add(ElderRow(id=1, name="张秀英", community=COMMUNITY))
        session.flush()
        register_device(session, device_id, "4g-elder-phone", elder_id=1)
    engine.dispose()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that takes connections and never answers: the slowest InfluxDB there is."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def test_serve_writes_telemetry_and_db_upgrade_sets_up_influx(
    mosquitto: Mosquitto, influxd: InfluxServer, tmp_path: Path
) -> None:
    database = "anxin_serve"
    setup = anxin_env(
        tmp_path / "anxin",
        ANXIN_MQTT_URL=mosquitto.url,
        ANXIN_INFLUX_URL=influxd.url,
        ANXIN_INFLUX_DB=database,
        ANXIN_INFLUX_FLUSH_INTERVAL_S="0.1",
    )
    upgraded = setup.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "InfluxDB database anxin_serve: retention policy anxin (400 days)" in upgraded.stdout
    register(setup, "w-1")
    setup.add_user("engineer1", PASSWORD, role="engineer")
    with running_anxin(setup):
        ready = httpx.get(f"{setup.api_url}/readyz").json()
        assert ready["checks"]["telemetry"] is True
        mosquitto_pub(mosquitto.port, "anxin/v1/w-1/heartbeat", '{"battery": 77, "rssi": -80}')
        mosquitto_pub(mosquitto.port, "anxin/v1/w-1/telemetry", '{"metrics": {"spo2": 97}}')

        def written() -> list[object] | None:
            series = influxd.query(database, "SELECT * FROM heartbeat, telemetry")
            return series if len(series) == 2 else None

        series = wait_until(written, within_s=15)
        token = setup.token("engineer1", PASSWORD)
        response = httpx.get(
            f"{setup.api_url}/api/v1/devices/w-1/telemetry",
            headers={"Authorization": f"Bearer {token}"},
        )
    rows = {s["name"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in series}  # type: ignore[index, call-overload]
    assert rows["heartbeat"]["battery"] == 77
    assert rows["heartbeat"]["community"] == COMMUNITY
    assert rows["heartbeat"]["model"] == "4g-elder-phone"
    assert rows["telemetry"]["spo2"] == 97
    assert response.status_code == 200
    assert {(p["metric"], p["value"]) for p in response.json()["points"]} == {
        ("battery", 77.0),
        ("rssi", -80.0),
        ("spo2", 97.0),
    }


def test_a_slow_influxdb_never_delays_an_sos(
    mosquitto: Mosquitto, black_hole: int, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    setup = anxin_env(
        tmp_path / "anxin",
        ANXIN_MQTT_URL=mosquitto.url,
        ANXIN_INFLUX_URL=f"http://127.0.0.1:{black_hole}",
        ANXIN_INFLUX_DB="anxin",
        ANXIN_INFLUX_TIMEOUT_S="4",
        ANXIN_INFLUX_BATCH_SIZE="5",
        ANXIN_INFLUX_FLUSH_INTERVAL_S="0.1",
        ANXIN_INFLUX_SPOOL_DIR=str(spool),
    )
    register(setup, "w-1")
    with running_anxin(setup), listening(mosquitto.port, "anxin/v1/w-1/ack") as acks:
        ready = httpx.get(f"{setup.api_url}/readyz", timeout=10)
        # Reported, but the process stays ready: alerts do not depend on telemetry.
        assert ready.status_code == 200
        assert ready.json()["degraded"] == ["telemetry"]
        for n in range(20):
            mosquitto_pub(mosquitto.port, "anxin/v1/w-1/heartbeat", json.dumps({"seq": n}))
        time.sleep(0.5)  # the writer is now stuck in a write that InfluxDB never answers
        pressed = time.monotonic()
        mosquitto_pub(mosquitto.port, "anxin/v1/w-1/sos", '{"trigger": "button"}')
        ack = json.loads(acks.get(timeout=10).payload)
        waited = time.monotonic() - pressed
    assert ack["status"] == "received"
    # mosquitto_pub itself takes some 0.1 s; a wait on InfluxDB would take its 4 s timeout.
    assert waited < 2.0, waited
    print(f"\nSOS acknowledged {waited * 1000:.0f} ms after it was published, InfluxDB hanging")
    # Nothing lost: what InfluxDB did not take is in the spool, for the next start.
    assert Spool(spool, 1 << 30).points == 20
