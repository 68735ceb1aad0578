"""The loop end to end (issue 16): an SOS over a real Mosquitto to ``anxin serve``, nobody
answers the phone, the dispatcher resolves it `visit_needed`, the community worker finds the
visit on their list and completes it `well`; the alert's, the visit's and the elder's
timelines read in that order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.console import import_fleet
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

PASSWORD = "correct horse battery"
COMMUNITY = "张家口市/张北县/花园街道/幸福社区"


def call(setup: AnxinEnv, token: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(
        method,
        f"{setup.api_url}/api/v1/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_sos_no_answer_visit_needed_visited_well(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    import_fleet(setup, tmp_path)  # 张桂兰 of 幸福社区 wears pendant-1
    setup.add_user("li", PASSWORD)
    result = setup.cli("users", "add", "xiaoli", "--role", "visitor", "--scope", COMMUNITY,
                       "--password-stdin", stdin=PASSWORD)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with running_anxin(setup), listening(mosquitto.port, "anxin/v1/pendant-1/ack") as acks:
        dispatcher = setup.token("li", PASSWORD)
        visitor = setup.token("xiaoli", PASSWORD)
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-1/sos", '{"trigger": "button"}')

        def the_alert() -> dict[str, Any] | None:
            items = call(setup, dispatcher, "GET", "alerts")["items"]
            return next((a for a in items if a["device_id"] == "pendant-1"), None)

        alert = wait_until(the_alert)
        assert json.loads(acks.get(timeout=10).payload)["status"] == "received"
        call(setup, dispatcher, "POST", f"alerts/{alert['id']}/claim")
        call(setup, dispatcher, "POST", f"alerts/{alert['id']}/notes",
             {"text": "拨打老人及家属电话均无人接听"})  # fmt: skip
        resolved = call(setup, dispatcher, "POST", f"alerts/{alert['id']}/resolve",
                        {"outcome": "visit_needed", "note": "请社区上门查看"})  # fmt: skip
        assert resolved["outcome"] == "visit_needed"
        assert [json.loads(acks.get(timeout=10).payload)["status"] for _ in range(2)] == [
            "claimed",
            "resolved",
        ]
        # The visitor's list: the visit, with why, where, the key and whom to call.
        listed = call(setup, visitor, "GET", "visits?status=open")["items"]
        # (The scheduler also asked for her weekly routine visit: she lives alone, aged.)
        assert {v["reason"] for v in listed} <= {"alert_followup", "routine"}
        [visit] = [v for v in listed if v["reason"] == "alert_followup"]
        assert (visit["reason"], visit["alert_id"], visit["alert_type"]) == (
            "alert_followup",
            alert["id"],
            "sos",
        )
        assert visit["elder"]["address"] == "幸福社区3号楼2单元401"
        assert visit["elder"]["key_safe_note"] == "备用钥匙在邻居王芳家"
        queue = httpx.get(
            f"{setup.api_url}/api/v1/alerts", headers={"Authorization": f"Bearer {visitor}"}
        )
        assert queue.status_code == 403  # the queue is the control room's
        call(setup, visitor, "POST", f"visits/{visit['id']}/claim")
        done = call(setup, visitor, "POST", f"visits/{visit['id']}/complete",
                    {"outcome": "well", "note": "老人午睡未听到电话，身体无碍"})  # fmt: skip
        detail = call(setup, dispatcher, "GET", f"alerts/{alert['id']}")
        elder = call(setup, visitor, "GET", f"elders/{visit['elder_id']}/visits")

    assert (done["status"], done["outcome"], done["assignee"]) == ("done", "well", "xiaoli")
    assert [(e["action"], e["actor"]) for e in detail["timeline"]] == [
        ("created", "device:pendant-1"),
        ("claimed", "li"),
        ("note", "li"),
        ("resolved", "li"),
        ("visit_requested", "li"),
        ("visit_done", "xiaoli"),
    ]
    assert detail["timeline"][3]["detail"]["outcome"] == "visit_needed"
    assert detail["timeline"][4]["detail"] == {"visit_id": visit["id"]}
    assert detail["timeline"][5]["detail"] == {"visit_id": visit["id"], "outcome": "well"}
    steps = [(e["action"], e["actor"], e["detail"].get("outcome")) for e in done["timeline"]]
    assert steps == [
        ("requested", "li", None),
        ("assigned", "xiaoli", None),
        ("done", "xiaoli", "well"),
    ]
    assert done["timeline"][0]["detail"]["alert_id"] == alert["id"]
    ours = [e["action"] for e in elder["timeline"] if e["visit_id"] == visit["id"]]
    assert ours == ["requested", "assigned", "done"]
    assert done["notes"] == "请社区上门查看\n老人午睡未听到电话，身体无碍"
