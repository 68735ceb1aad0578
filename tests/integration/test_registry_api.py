"""Elders, devices, the import and dead letters over HTTP: roles, scopes and errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerting.decisions import RaiseAlert
from alerting.model import AlertType, Category, Priority
from alerting.store import raise_or_coalesce
from api.users import Role
from devices.events import Rejected
from ingest.dead_letters import store_dead_letters
from tests.support.api_world import ApiWorld, add_users, api_world

ZHANG = {
    "name": "张秀英",
    "phone": "13800138000",
    "address": "花园街3号",
    "community": "张家口市/张北县/花园街道/幸福社区",
    "categories": ["living_alone", "advanced_age"],
    "medical_notes": "高血压",
    "contacts": [
        {"name": "李明", "phone": "13900139000", "relation": "family"},
        {"name": "王大妈", "phone": "13700137000", "relation": "neighbour"},
    ],
}

As = Callable[[str], dict[str, str]]


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> Iterator[ApiWorld]:
    with api_world(sessions, with_registry=False) as running:
        yield running


@pytest.fixture
def client(world: ApiWorld) -> TestClient:
    return world.client


@pytest.fixture
def as_(world: ApiWorld) -> As:
    return world.headers


def test_an_admin_registers_an_elder_and_dispatchers_read_them(client: TestClient, as_: As) -> None:
    created = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin"))
    assert created.status_code == 201, created.text
    elder = created.json()
    assert [c["position"] for c in elder["contacts"]] == [1, 2]
    for reader in ("dispatcher", "zhangbei_dispatcher", "supervisor"):
        response = client.get(f"/api/v1/elders/{elder['id']}", headers=as_(reader))
        assert response.status_code == 200, reader
        assert response.json()["medical_notes"] == "高血压"
    listed = client.get("/api/v1/elders", headers=as_("zhangbei_dispatcher")).json()
    assert [e["name"] for e in listed["items"]] == ["张秀英"]


def test_scopes_and_roles_refuse_what_they_should(client: TestClient, as_: As) -> None:
    elder = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin")).json()
    # Another district's dispatcher neither sees the elder nor learns they exist.
    other = client.get(f"/api/v1/elders/{elder['id']}", headers=as_("chongli_dispatcher"))
    assert other.status_code == 404
    assert client.get("/api/v1/elders", headers=as_("chongli_dispatcher")).json()["items"] == []
    # Engineers work on devices, not on people's records.
    assert client.get("/api/v1/elders", headers=as_("engineer")).status_code == 403
    # Only admins change the registry of people, and only within their own scope.
    assert client.post("/api/v1/elders", json=ZHANG, headers=as_("dispatcher")).status_code == 403
    elsewhere = {**ZHANG, "community": "张家口市/崇礼区"}
    refused = client.post("/api/v1/elders", json=elsewhere, headers=as_("zhangbei_admin"))
    assert refused.status_code == 403
    assert client.get("/api/v1/elders").status_code == 401


def test_patch_changes_only_what_is_sent(client: TestClient, as_: As) -> None:
    elder = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin")).json()
    patched = client.patch(
        f"/api/v1/elders/{elder['id']}",
        json={"address": "新华路8号", "contacts": [{"name": "李明", "phone": "13900139000"}]},
        headers=as_("admin"),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["address"], body["phone"], body["medical_notes"]) == (
        "新华路8号",
        "13800138000",
        "高血压",
    )
    assert [c["name"] for c in body["contacts"]] == ["李明"]


def test_an_elders_welfare_settings_are_set_validated_and_cleared(
    client: TestClient, as_: As
) -> None:
    elder = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin")).json()
    assert elder["welfare"] is None
    url = f"/api/v1/elders/{elder['id']}"
    welfare = {"checkin": True, "checkin_by": "09:30", "wandering": True, "inactivity_h": 6}
    patched = client.patch(url, json={"welfare": welfare}, headers=as_("admin"))
    assert patched.status_code == 200, patched.text
    assert patched.json()["welfare"] == {
        "inactivity_h": 6.0,
        "quiet_from": None,
        "quiet_until": None,
        "checkin": True,
        "checkin_by": "09:30:00",
        "wandering": True,
        "night_from": None,
        "night_until": None,
        "up_by": None,
    }
    for bad in ({"snooze": 1}, {"inactivity_h": -1}, {"up_by": "25:00"}):
        refused = client.patch(url, json={"welfare": bad}, headers=as_("admin"))
        assert refused.status_code == 422, bad
    # Another field leaves them alone; null clears them.
    client.patch(url, json={"address": "新华路8号"}, headers=as_("admin"))
    assert client.get(url, headers=as_("dispatcher")).json()["welfare"]["checkin"] is True
    cleared = client.patch(url, json={"welfare": None}, headers=as_("admin"))
    assert cleared.json()["welfare"] is None


def test_devices_crud_and_conflicts(client: TestClient, as_: As) -> None:
    elder = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin")).json()
    device = {"id": "p-017", "model": "sos-pendant", "elder_id": elder["id"], "room": "卧室"}
    assert client.post("/api/v1/devices", json=device, headers=as_("engineer")).status_code == 201
    again = client.post("/api/v1/devices", json=device, headers=as_("engineer"))
    assert again.status_code == 409
    bad = client.post(
        "/api/v1/devices", json={"id": "bad id", "model": "sos-pendant"}, headers=as_("admin")
    )
    assert bad.status_code == 422
    no_elder = client.post(
        "/api/v1/devices",
        json={"id": "p-018", "model": "sos-pendant", "elder_id": 999},
        headers=as_("admin"),
    )
    assert no_elder.status_code == 422
    assert client.post("/api/v1/devices", json=device, headers=as_("dispatcher")).status_code == 403
    patched = client.patch(
        "/api/v1/devices/p-017", json={"status": "maintenance"}, headers=as_("engineer")
    ).json()
    assert (patched["status"], patched["room"]) == ("maintenance", "卧室")
    assert (
        client.get("/api/v1/devices/p-017", headers=as_("zhangbei_dispatcher")).status_code == 200
    )
    assert client.get("/api/v1/devices/p-017", headers=as_("chongli_dispatcher")).status_code == 404
    page = client.get("/api/v1/devices?limit=1", headers=as_("dispatcher")).json()
    assert [d["id"] for d in page["items"]] == ["p-017"]


def test_the_import_endpoint_reports_bad_lines(client: TestClient, as_: As) -> None:
    csv = (
        "device_id,model,elder_name,elder_phone,community,contact_name,contact_phone,"
        "contact_relation\n"
        "d-1,sos-pendant,赵强,13500135000,张家口市/张北县,赵小明,13900139001,儿子\n"
        "d 2,sos-pendant,,,,,,\n"
        "d-3,sos-pendant,钱芳,13500135003,张家口市/张北县,孙丽,13900139003,表舅\n"
    ).encode()
    files = {"file": ("fleet.csv", csv, "text/csv")}
    response = client.post("/api/v1/devices/import", files=files, headers=as_("admin"))
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows"], report["devices_created"], report["elders_created"]) == (2, 2, 2)
    assert [e["line"] for e in report["errors"]] == [3]
    assert [(w["line"], "'表舅'" in w["message"]) for w in report["warnings"]] == [(4, True)]
    elders = client.get("/api/v1/elders", headers=as_("admin")).json()["items"]
    contacts = {e["name"]: e["contacts"][0] for e in elders if e["name"] in ("赵强", "钱芳")}
    assert (contacts["赵强"]["relation"], contacts["赵强"]["label"]) == ("family", "儿子")
    assert (contacts["钱芳"]["relation"], contacts["钱芳"]["label"]) == ("other", "表舅")
    refused = client.post("/api/v1/devices/import", files=files, headers=as_("engineer"))
    assert refused.status_code == 403
    broken = client.post(
        "/api/v1/devices/import",
        files={"file": ("x.csv", b"nothing,useful\n1,2\n", "text/csv")},
        headers=as_("admin"),
    )
    assert broken.status_code == 400
    assert "missing column" in broken.json()["detail"]


def test_engineers_list_dead_letters(
    client: TestClient, as_: As, sessions: sessionmaker[Session]
) -> None:
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    with sessions.begin() as session:
        store_dead_letters(
            session,
            [
                Rejected(
                    topic="anxin/v1/d1/event", payload=b"{bad", reason="JSON", received_at=now
                ),
                Rejected(topic="x", payload=b"\xff\x00", reason="unknown topic", received_at=now),
            ],
        )
    response = client.get("/api/v1/dead-letters", headers=as_("engineer"))
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["topic"], i["payload"], i["payload_b64"]) for i in items] == [
        ("x", None, "/wA="),
        ("anxin/v1/d1/event", "{bad", None),
    ]
    assert client.get("/api/v1/dead-letters", headers=as_("dispatcher")).status_code == 403


def test_the_alert_queue_is_scoped_by_community(
    client: TestClient, as_: As, sessions: sessionmaker[Session]
) -> None:
    elder = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin")).json()
    now = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    with sessions.begin() as session:
        for device_id, elder_id in (("p-017", elder["id"]), ("stranger", None)):
            raise_or_coalesce(
                session,
                RaiseAlert(
                    device_id=device_id,
                    elder_id=elder_id,
                    type=AlertType.SOS,
                    category=Category.EMERGENCY,
                    priority=Priority.CRITICAL,
                    occurred_at=now,
                ),
                now,
            )

    def queue(user: str, query: str = "") -> list[str]:
        response = client.get(f"/api/v1/alerts{query}", headers=as_(user))
        return [a["device_id"] for a in response.json()["items"]]

    assert queue("dispatcher") == ["p-017", "stranger"]  # city level sees all, unknown too
    assert queue("zhangbei_dispatcher") == ["p-017"]
    assert queue("chongli_dispatcher") == []
    assert queue("dispatcher", "?community=张家口市/崇礼区") == []
    assert queue("dispatcher", "?community=张家口市/张北县/花园街道") == ["p-017"]
    alert_id = client.get("/api/v1/alerts", headers=as_("dispatcher")).json()["items"][0]["id"]
    assert (
        client.get(f"/api/v1/alerts/{alert_id}", headers=as_("chongli_dispatcher")).status_code
        == 404
    )
    assert (
        client.get(f"/api/v1/alerts/{alert_id}", headers=as_("zhangbei_dispatcher")).status_code
        == 200
    )


def test_a_scope_is_matched_as_text_not_as_a_pattern(
    client: TestClient, as_: As, sessions: sessionmaker[Session]
) -> None:
    client.post("/api/v1/elders", json=ZHANG, headers=as_("admin"))
    with sessions.begin() as session:
        for name, scope in (("wildcard", "张家口市/张北_"), ("wider", "张家口市/%")):
            add_users(session, {name: (Role.DISPATCHER, scope)})
    for user in ("wildcard", "wider"):
        assert client.get("/api/v1/elders", headers=as_(user)).json()["items"] == [], user


def test_a_scoped_admin_imports_only_within_their_scope(client: TestClient, as_: As) -> None:
    csv = (
        "device_id,model,elder_name,elder_phone,community\n"
        "d-1,sos-pendant,赵强,13500135000,张家口市/张北县/花园街道\n"
        "d-2,sos-pendant,钱芳,13500135001,张家口市/崇礼区\n"
        "d-3,sos-pendant,,,\n"
    ).encode()
    files = {"file": ("fleet.csv", csv, "text/csv")}
    report = client.post("/api/v1/devices/import", files=files, headers=as_("zhangbei_admin"))
    body = report.json()
    assert body["devices_created"] == 1
    assert [(e["line"], e["message"].split(":")[0]) for e in body["errors"]] == [
        (3, "outside your scope 张家口市/张北县"),
        (4, "outside your scope 张家口市/张北县"),
    ]


def test_null_for_a_required_field_is_a_422(client: TestClient, as_: As) -> None:
    elder = client.post("/api/v1/elders", json=ZHANG, headers=as_("admin")).json()
    refused = client.patch(
        f"/api/v1/elders/{elder['id']}", json={"name": None}, headers=as_("admin")
    )
    assert (refused.status_code, refused.json()["detail"]) == (422, "name cannot be null")
    client.post("/api/v1/devices", json={"id": "p-1", "model": "sos-pendant"}, headers=as_("admin"))
    for field in ("model", "status"):
        response = client.patch("/api/v1/devices/p-1", json={field: None}, headers=as_("admin"))
        assert response.status_code == 422, field
