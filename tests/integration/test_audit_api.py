"""The audit: every administrative change leaves one entry, in its own transaction (a refused
change leaves none), with no password and no elder's personal data; admins read it, a scoped
admin only their communities'."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support.api_world import ApiWorld, api_world

ELDER = {
    "name": "孙桂兰",
    "phone": "13800138111",
    "address": "花园街9号",
    "community": "张家口市/张北县/花园街道/幸福社区",
    "medical_notes": "糖尿病",
    "contacts": [{"name": "孙强", "phone": "13900139111", "relation": "family"}],
}
CSV = "device_id,model,elder_name,community\nimp-9,sos-pendant,周玉梅,张家口市/张北县\n"


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> Iterator[ApiWorld]:
    with api_world(sessions, with_registry=False) as running:
        yield running


def test_every_change_is_audited_without_personal_data(world: ApiWorld) -> None:
    client, admin = world.client, world.headers("admin")
    elder = client.post("/api/v1/elders", json={**ELDER, "external_id": "X-1"}, headers=admin)
    assert elder.status_code == 201, elder.text
    elder_id = elder.json()["id"]
    patch = {"address": "花园街10号", "contacts": [*ELDER["contacts"], *ELDER["contacts"]]}
    assert client.patch(f"/api/v1/elders/{elder_id}", json=patch, headers=admin).status_code == 200
    twin = client.post("/api/v1/elders", json={**ELDER, "external_id": "X-1"}, headers=admin)
    assert twin.status_code == 409  # refused: no entry
    device = {"id": "p-audit", "model": "sos-pendant", "elder_id": elder_id}
    assert client.post("/api/v1/devices", json=device, headers=admin).status_code == 201
    retire = client.patch("/api/v1/devices/p-audit", json={"status": "retired"}, headers=admin)
    assert retire.status_code == 200
    files = {"file": ("fleet.csv", CSV.encode(), "text/csv")}
    assert client.post("/api/v1/devices/import", files=files, headers=admin).status_code == 200

    page = client.get("/api/v1/audit", headers=admin)
    assert page.status_code == 200, page.text
    entries = [(e["actor"], e["action"], e["target"], e["detail"]) for e in page.json()["items"]]
    assert entries == [
        ("admin", "devices.imported", "import:fleet.csv", {
            "rows": 1, "elders_created": 1, "elders_updated": 0, "devices_created": 1,
            "devices_updated": 0, "contacts_added": 0, "errors": 0}),
        ("admin", "device.updated", "device:p-audit", {"status": "retired"}),
        ("admin", "device.created", "device:p-audit", {"model": "sos-pendant",
                                                       "elder_id": elder_id}),
        ("admin", "elder.updated", f"elder:{elder_id}", {"fields": ["address", "contacts"],
                                                         "contacts": 2}),
        ("admin", "elder.created", f"elder:{elder_id}", {"fields": [
            "address", "community", "contacts", "external_id", "medical_notes", "name", "phone"],
            "contacts": 1}),
    ]  # fmt: skip
    text = json.dumps(page.json(), ensure_ascii=False)
    for personal in (
        "孙桂兰",
        "13800138111",
        "花园街9号",
        "花园街10号",
        "糖尿病",
        "孙强",
        "13900139111",
        "周玉梅",
    ):
        assert personal not in text
    one = client.get("/api/v1/audit", params={"target": "device:p-audit"}, headers=admin).json()
    assert [e["action"] for e in one["items"]] == ["device.updated", "device.created"]
    first = client.get("/api/v1/audit", params={"limit": 2}, headers=admin).json()
    rest = client.get(
        "/api/v1/audit", params={"cursor": first["next_cursor"]}, headers=admin
    ).json()
    assert [e["id"] for e in first["items"] + rest["items"]] == [
        e["id"] for e in page.json()["items"]
    ]


def test_a_scoped_admin_reads_the_audit_of_their_communities(world: ApiWorld) -> None:
    client = world.client
    chongli = {**ELDER, "community": "张家口市/崇礼区"}
    for body in (ELDER, chongli):
        assert client.post("/api/v1/elders", json=body, headers=world.headers("admin")).is_success
    seen = client.get("/api/v1/audit", headers=world.headers("zhangbei_admin")).json()["items"]
    assert [e["community"] for e in seen] == ["张家口市/张北县/花园街道/幸福社区"]
    everything = client.get("/api/v1/audit", headers=world.headers("admin")).json()["items"]
    assert len(everything) == 2
    for role in ("dispatcher", "supervisor", "engineer"):
        assert client.get("/api/v1/audit", headers=world.headers(role)).status_code == 403
