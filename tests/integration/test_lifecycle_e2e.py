"""A dispatcher works an SOS end to end: mosquitto_pub → real Mosquitto → ``anxin serve`` →
claim and acknowledge over HTTP → the device hears on its ack topic that help is coming."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from anxin.database import open_database, upgrade
from devices.registry import register_device
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

PASSWORD = "correct horse battery"


def register(setup: AnxinEnv, device_id: str) -> None:
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        register_device(session, device_id, "sos-pendant")
    engine.dispose()


def alert_of(setup: AnxinEnv, token: str, device_id: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{setup.api_url}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return next((a for a in items if a["device_id"] == device_id), None)


def act(setup: AnxinEnv, token: str, alert_id: int, action: str, body: Any = None) -> Any:
    response = httpx.post(
        f"{setup.api_url}/api/v1/alerts/{alert_id}/{action}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_after_claim_and_acknowledge_the_device_hears_help_is_coming(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    register(setup, "pendant-7")
    with running_anxin(setup), listening(mosquitto.port, "anxin/v1/pendant-7/ack") as acks:
        token = setup.token("dispatcher1", PASSWORD)
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-7/sos", '{"trigger": "button"}')
        alert = wait_until(lambda: alert_of(setup, token, "pendant-7"))
        received = json.loads(acks.get(timeout=10).payload)

        act(setup, token, alert["id"], "claim")
        claimed = json.loads(acks.get(timeout=10).payload)
        acknowledged = act(setup, token, alert["id"], "acknowledge")
        help_coming = json.loads(acks.get(timeout=10).payload)

        resolved = act(setup, token, alert["id"], "resolve", {"outcome": "resolved_by_phone"})
        done = json.loads(acks.get(timeout=10).payload)

    assert received["status"] == "received"
    assert claimed == {
        "alert_id": alert["id"],
        "status": "claimed",
        "message": "调度员已接到您的呼叫，正在处理。",
    }
    assert acknowledged["status"] == "acknowledged"
    assert help_coming == {
        "alert_id": alert["id"],
        "status": "help_coming",
        "message": "工作人员正在赶来，请保持冷静。",
    }
    assert (done["alert_id"], done["status"]) == (alert["id"], "resolved")
    assert done["message"]
    assert [(e["action"], e["actor"]) for e in resolved["timeline"]] == [
        ("created", "device:pendant-7"),
        ("claimed", "dispatcher1"),
        ("acknowledged", "dispatcher1"),
        ("resolved", "dispatcher1"),
    ]


def test_an_api_process_beside_an_ingest_process_tells_the_device_and_records_a_broker_outage(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """``anxin ingest`` and ``anxin api`` as two processes on one database: the API's own
    broker connection sends the Acks and Commands; with the broker stopped the action is still
    taken, and the timeline says the device was not told."""
    folder = tmp_path / "anxin"
    ingest = anxin_env(folder, ANXIN_MQTT_URL=mosquitto.url)
    # Its own port, the same database, a broker connection of its own for Acks and Commands.
    api = anxin_env(folder, ANXIN_MQTT_URL=mosquitto.url, ANXIN_MQTT_DOWNLINK_URL=mosquitto.url)
    api.add_user("dispatcher1", PASSWORD)
    api.add_user("engineer1", PASSWORD, role="engineer")
    register(api, "pendant-8")
    register(api, "pendant-9")
    with (
        running_anxin(ingest, command="ingest"),
        running_anxin(api, command="api"),
        listening(mosquitto.port, "anxin/v1/pendant-8/ack") as acks,
        listening(mosquitto.port, "anxin/v1/pendant-9/cmd") as commands,
    ):
        assert httpx.get(f"{api.api_url}/readyz").json()["checks"] == {
            "database": True,
            "broker": True,
        }
        token = api.token("dispatcher1", PASSWORD)
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-8/sos", "{}")
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-9/sos", "{}")
        alert = wait_until(lambda: alert_of(api, token, "pendant-8"))
        second = wait_until(lambda: alert_of(api, token, "pendant-9"))
        assert json.loads(acks.get(timeout=10).payload)["status"] == "received"  # from ingest

        act(api, token, alert["id"], "claim")
        claimed = json.loads(acks.get(timeout=10).payload)
        act(api, token, alert["id"], "acknowledge")
        help_coming = json.loads(acks.get(timeout=10).payload)
        resolved = act(api, token, alert["id"], "resolve", {"outcome": "false_alarm"})
        done = json.loads(acks.get(timeout=10).payload)

        engineer = {"Authorization": f"Bearer {api.token('engineer1', PASSWORD)}"}
        sent = httpx.post(
            f"{api.api_url}/api/v1/devices/pendant-9/commands",
            json={"command": "configure", "params": {"heartbeat_interval_s": 300}},
            headers=engineer,
        )
        command = commands.get(timeout=10)

        mosquitto.process.terminate()
        mosquitto.process.wait(timeout=10)
        wait_until(lambda: httpx.get(f"{api.api_url}/readyz").status_code == 503 or None)
        started = time.monotonic()
        claimed_offline = act(api, token, second["id"], "claim")
        claim_s = time.monotonic() - started
        refused = httpx.post(
            f"{api.api_url}/api/v1/devices/pendant-9/commands",
            json={"command": "ping"},
            headers=engineer,
        )

    assert [(a["alert_id"], a["status"]) for a in (claimed, help_coming, done)] == [
        (alert["id"], "claimed"),
        (alert["id"], "help_coming"),
        (alert["id"], "resolved"),
    ]
    assert [e["action"] for e in resolved["timeline"]] == [
        "created",
        "claimed",
        "acknowledged",
        "resolved",
    ]
    assert sent.status_code == 202, sent.text
    assert (command.qos, command.retain) == (1, False)
    assert json.loads(command.payload) == {
        "command": "configure",
        "params": {"heartbeat_interval_s": 300},
        "id": sent.json()["id"],
    }

    assert (claimed_offline["status"], claimed_offline["claimed_by"]) == ("claimed", "dispatcher1")
    last = claimed_offline["timeline"][-1]
    assert (last["action"], last["detail"]) == (
        "device_not_told",
        {"ack": "claimed", "reason": "sending failed: not connected to the broker"},
    )
    print(f"claim with the broker down answered in {claim_s * 1000:.0f} ms")
    assert claim_s < 2.0  # refused at once, not after a PUBACK timeout
    assert (refused.status_code, refused.json()) == (
        503,
        {"detail": "no broker connection: not connected to the broker"},
    )
