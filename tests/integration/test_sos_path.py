"""The skeleton's path end to end: mosquitto_pub → real Mosquitto → anxin serve → API and Ack."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
from paho.mqtt.enums import MQTTProtocolVersion

from anxin.database import open_database, upgrade
from devices.registry import register_device
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

PASSWORD = "correct horse battery"


def open_alerts(setup: AnxinEnv, token: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{setup.api_url}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def alert_of(setup: AnxinEnv, token: str, device_id: str) -> dict[str, Any] | None:
    return next((a for a in open_alerts(setup, token) if a["device_id"] == device_id), None)


def register(setup: AnxinEnv, device_id: str, model: str) -> None:
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        register_device(session, device_id, model)
    engine.dispose()


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchall()


def test_sos_is_stored_listed_and_acknowledged_to_the_device(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    register(setup, "pendant-7", "sos-pendant")
    with running_anxin(setup), listening(mosquitto.port, "anxin/v1/pendant-7/ack") as acks:
        token = setup.token("dispatcher1", PASSWORD)
        sos = {"trigger": "button", "seq": 1, "location": {"room": "卧室"}, "firmware": "1.2"}
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-7/sos", json.dumps(sos), qos=1)

        alert = wait_until(lambda: alert_of(setup, token, "pendant-7"))
        ack = json.loads(acks.get(timeout=10).payload)

    assert alert["type"] == "sos"
    assert alert["category"] == "emergency"
    assert alert["priority"] == "critical"
    assert alert["status"] == "new"
    assert alert["count"] == 1
    assert alert["location"] == {"room": "卧室"}
    assert alert["attributes"]["trigger"] == "button"
    assert alert["attributes"]["firmware"] == "1.2"  # unknown fields are kept
    assert "unregistered_device" not in alert["attributes"]
    assert ack["alert_id"] == alert["id"]
    assert ack["status"] == "received"
    assert ack["message"]
    assert ack["seq"] == 1  # the press it answers, for a device resending it


def test_unregistered_and_unreadable_sos_still_raise_alerts(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    with running_anxin(setup):
        token = setup.token("dispatcher1", PASSWORD)
        mosquitto_pub(mosquitto.port, "anxin/v1/stranger-1/sos", "")
        mosquitto_pub(mosquitto.port, "anxin/v1/stranger-2/sos", "{not json")
        stranger = wait_until(lambda: alert_of(setup, token, "stranger-1"))
        garbled = wait_until(lambda: alert_of(setup, token, "stranger-2"))

    assert stranger["attributes"]["unregistered_device"] is True
    assert "payload_error" not in stranger["attributes"]  # an empty SOS is a valid SOS
    assert garbled["attributes"]["unregistered_device"] is True
    assert "JSON" in garbled["attributes"]["payload_error"]


def test_heartbeats_update_last_seen_and_bad_input_becomes_dead_letters(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    register(setup, "pendant-8", "sos-pendant")
    with running_anxin(setup):
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-8/heartbeat", '{"battery": 87}', qos=0)
        mosquitto_pub(mosquitto.port, "anxin/v1/ghost-1/heartbeat", "{}", qos=1)
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-8/event", '{"type": "explode"}')
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-8/heartbeat", '{"battery": 300}')
        seen = wait_until(
            lambda: (
                query(
                    setup.database_path,
                    "SELECT last_seen_at, battery FROM devices "
                    "WHERE id = 'pendant-8' AND last_seen_at IS NOT NULL",
                )
                or None
            )
        )
        letters = wait_until(
            lambda: (
                rows
                if len(rows := query(setup.database_path, "SELECT * FROM dead_letters")) >= 3
                else None
            )
        )
        # While connected, ingest tells the scheduler it is listening.
        pulses = wait_until(
            lambda: query(setup.database_path, "SELECT name FROM service_pulses") or None
        )

    assert seen[0][1] == 87
    assert pulses == [("ingest",)]
    reasons = sorted((row[2], row[4]) for row in letters)
    assert reasons == [
        ("anxin/v1/ghost-1/heartbeat", "unknown device"),
        ("anxin/v1/pendant-8/event", "unknown event type 'explode'"),
        ("anxin/v1/pendant-8/heartbeat", "battery: Input should be less than or equal to 100"),
    ]


def test_an_sos_sent_while_the_service_is_down_is_raised_when_it_is_back(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    with running_anxin(setup):
        pass  # the first start opens the persistent session at the broker
    mosquitto_pub(mosquitto.port, "anxin/v1/pendant-9/sos", '{"seq": 5}')
    with running_anxin(setup):
        token = setup.token("dispatcher1", PASSWORD)
        alert = wait_until(lambda: alert_of(setup, token, "pendant-9"))
    assert alert["count"] == 1


def test_the_embedded_broker_carries_the_same_path(tmp_path: Path) -> None:
    from tests.support.ports import free_port

    broker_port = free_port()
    setup = anxin_env(tmp_path / "demo", ANXIN_EMBEDDED_MQTT_PORT=str(broker_port))
    with (
        running_anxin(setup, command="demo"),
        listening(
            broker_port, "anxin/v1/demo-pendant-02/ack", MQTTProtocolVersion.MQTTv311
        ) as acks,
    ):
        token = setup.token("demo", "anxin-demo")
        mosquitto_pub(
            broker_port,
            "anxin/v1/demo-pendant-02/sos",
            '{"trigger": "pullcord"}',
            protocol="mqttv311",
        )
        alert = wait_until(
            lambda: next(
                (
                    a
                    for a in open_alerts(setup, token)
                    if a["device_id"] == "demo-pendant-02"
                    and a["attributes"].get("trigger") == "pullcord"
                ),
                None,
            )
        )
        ack = json.loads(acks.get(timeout=10).payload)
        detail = httpx.get(
            f"{setup.api_url}/api/v1/alerts/{alert['id']}",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        devices = httpx.get(
            f"{setup.api_url}/api/v1/devices", headers={"Authorization": f"Bearer {token}"}
        ).json()["items"]
    assert alert["type"] == "sos"
    assert "unregistered_device" not in alert["attributes"]
    # The demo's devices belong to its (fictional) elders: the alert says who, where and whom
    # to call, in order.
    elder = detail["elder"]
    assert (elder["name"], elder["address"]) == ("刘建国（演示）", "演示路1号院5号楼1单元302室")
    assert elder["medical_notes"]
    assert elder["key_safe_note"]
    assert [(c["position"], c["label"]) for c in detail["contacts"]] == [(1, "女儿"), (2, "对门")]
    assert all(d["elder_id"] is not None for d in devices)
    assert {d["model"] for d in devices} >= {"pir-motion", "smoke-detector"}
    assert ack == {"alert_id": alert["id"], "status": "received", "message": ack["message"]}
