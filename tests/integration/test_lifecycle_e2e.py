"""A dispatcher works an SOS end to end: mosquitto_pub → real Mosquitto → ``anxin serve`` →
claim and acknowledge over HTTP → the device hears on its ack topic that help is coming."""

from __future__ import annotations

import json
import queue
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
        acknowledged = act(setup, token, alert["id"], "acknowledge")
        help_coming = json.loads(acks.get(timeout=10).payload)

        resolved = act(setup, token, alert["id"], "resolve", {"outcome": "resolved_by_phone"})
        done = json.loads(acks.get(timeout=10).payload)

    assert received["status"] == "received"
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


def test_an_api_only_process_acts_and_records_that_the_device_was_not_told(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """``anxin api`` has no broker connection yet: the action is taken, and the timeline says
    the device did not hear of it."""
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    register(setup, "pendant-8")
    with running_anxin(setup):
        token = setup.token("dispatcher1", PASSWORD)
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-8/sos", "{}")
        alert = wait_until(lambda: alert_of(setup, token, "pendant-8"))

    with (
        running_anxin(setup, command="api"),
        listening(mosquitto.port, "anxin/v1/pendant-8/ack") as acks,
    ):
        token = setup.token("dispatcher1", PASSWORD)
        act(setup, token, alert["id"], "claim")
        acknowledged = act(setup, token, alert["id"], "acknowledge")
        try:
            unexpected = acks.get(timeout=1)
        except queue.Empty:
            unexpected = None

    assert unexpected is None
    assert acknowledged["status"] == "acknowledged"
    last = acknowledged["timeline"][-1]
    assert (last["action"], last["detail"]) == (
        "device_not_told",
        {"ack": "help_coming", "reason": "no device downlink in this process"},
    )
