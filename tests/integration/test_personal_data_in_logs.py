"""No personal data in the logs: the registry imported, an SOS and a fall worked end to end
(claim, acknowledge, note, resolve), an elder edited and a file imported over HTTP, all at
INFO; none of the registry's names, phones, addresses or notes is in any log line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin, wait_until

PASSWORD = "a-good-password"
NAMES = ("张秀英", "李明", "王大妈", "赵强", "钱芳")
PHONES = ("13800138017", "13900139017", "13700137017", "13500135018", "13600136018")
ADDRESSES = ("花园街3号院2单元", "新华路8号楼")
NOTES = ("高血压服药", "钥匙在门口花盆下", "心脏起搏器")
CSV = (
    "device_id,model,elder_id,elder_name,elder_phone,address,community,categories,contact_name,"
    "contact_phone,contact_relation,medical_notes,key_safe_note\n"
    f"pii-p1,sos-pendant,E17,{NAMES[0]},{PHONES[0]},{ADDRESSES[0]},张家口市/张北县,独居,"
    f"{NAMES[1]},{PHONES[1]},儿子,{NOTES[0]},{NOTES[1]}\n"
    f"pii-f1,fall-detector,E17,{NAMES[0]},{PHONES[0]},,,,{NAMES[2]},{PHONES[2]},邻居,,\n"
)
MORE = (
    "device_id,model,elder_id,elder_name,elder_phone,address,community,contact_name,"
    "contact_phone,contact_relation\n"
    f"pii-p2,sos-pendant,E18,{NAMES[3]},{PHONES[3]},{ADDRESSES[1]},张家口市/张北县,"
    f"{NAMES[4]},{PHONES[4]},女儿\n"
)


def call(method: str, url: str, token: str, **kwargs: Any) -> Any:
    response = httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert response.status_code < 300, response.text
    return response.json()


def test_the_end_to_end_paths_log_no_personal_data(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url, ANXIN_LOG_LEVEL="info")
    (setup.folder / "fleet.csv").write_text(CSV, encoding="utf-8")
    imported = setup.cli("devices", "import", "fleet.csv")
    assert imported.returncode == 0, imported.stderr
    setup.add_user("admin1", PASSWORD, role="admin")
    api = setup.api_url
    with running_anxin(setup):
        token = setup.token("admin1", PASSWORD)
        mosquitto_pub(mosquitto.port, "anxin/v1/pii-p1/sos", '{"trigger": "button"}')
        mosquitto_pub(mosquitto.port, "anxin/v1/pii-f1/event", '{"type": "fall"}')

        def both() -> list[dict[str, Any]] | None:
            items = call("GET", f"{api}/api/v1/alerts", token)["items"]
            return items if len(items) >= 2 else None

        for alert in wait_until(both):
            detail = call("GET", f"{api}/api/v1/alerts/{alert['id']}", token)
            assert detail["elder"]["name"] == NAMES[0]  # the API shows it; the logs must not
            url = f"{api}/api/v1/alerts/{alert['id']}"
            call("POST", f"{url}/claim", token)
            call("POST", f"{url}/acknowledge", token)
            call("POST", f"{url}/notes", token, json={"text": "已电话联系老人"})
            call("POST", f"{url}/resolve", token, json={"outcome": "false_alarm"})
        elder = detail["elder"]["id"]
        call(
            "PATCH",
            f"{api}/api/v1/elders/{elder}",
            token,
            json={"address": ADDRESSES[1], "phone": PHONES[3]},
        )
        files = {"file": ("more.csv", MORE.encode(), "text/csv")}
        report = call("POST", f"{api}/api/v1/devices/import", token, files=files)
        assert report["rows"] == 1
    lines = (setup.folder / "anxin-serve.log").read_text(encoding="utf-8").splitlines()
    lines += imported.stderr.splitlines()
    assert any(json.loads(line).get("event") for line in lines if line.startswith("{"))
    personal = (*NAMES, *PHONES, *ADDRESSES, *NOTES)
    leaks = [(word, line) for line in lines for word in personal if word in line]
    assert leaks == []
