"""Users over HTTP: admins create, list, disable, re-enable, re-role, re-scope and reset the
password of users; tokens end with the change; scoped admins keep to their communities."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.audit import AuditRow
from api.users import Role, UserRow
from devices.elders import in_scope
from tests.support.api_world import USERS, ApiWorld, api_world

NEW_PASSWORD = "another-good-password"

# The routes' SQL is one indexed read or write, the same on both databases (every API test on
# PostgreSQL goes through the token check); Argon2 makes these slow: SQLite only.
pytestmark = pytest.mark.parametrize("sessions", ["sqlite"], indirect=True)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> Iterator[ApiWorld]:
    with api_world(sessions, with_registry=False) as running:
        yield running


def login(client: TestClient, username: str, password: str) -> Any:
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def me(client: TestClient, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return client.get("/api/v1/alerts", headers=headers).status_code


def test_an_admin_runs_a_users_life_and_its_tokens_end_with_each_change(world: ApiWorld) -> None:
    client, admin = world.client, world.headers("admin")
    body = {"username": "wang", "password": "wang-password", "role": "dispatcher"}
    created = client.post(
        "/api/v1/users", json={**body, "scope": " 张家口市 / 张北县"}, headers=admin
    )
    assert created.status_code == 201, created.text
    wang = created.json()
    assert {k: wang[k] for k in ("username", "role", "scope", "active")} == {
        "username": "wang",
        "role": "dispatcher",
        "scope": "张家口市/张北县",
        "active": True,
    }
    assert "password" not in created.text
    assert "hash" not in created.text
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 409
    listed = client.get("/api/v1/users", headers=admin).json()["items"]
    assert "wang" in [u["username"] for u in listed]
    assert all(set(u) == set(wang) for u in listed)

    token = login(client, "wang", "wang-password").json()["access_token"]
    assert me(client, token) == 200
    url = f"/api/v1/users/{wang['id']}"
    disabled = client.patch(url, json={"active": False}, headers=admin)
    assert (disabled.status_code, disabled.json()["active"]) == (200, False)
    assert me(client, token) == 401  # at once, not at the token's expiry
    assert login(client, "wang", "wang-password").status_code == 401
    assert client.patch(url, json={"active": True}, headers=admin).status_code == 200
    assert me(client, token) == 401  # an old token stays dead
    token = login(client, "wang", "wang-password").json()["access_token"]
    promoted = client.patch(url, json={"role": "supervisor", "scope": ""}, headers=admin)
    assert (promoted.json()["role"], promoted.json()["scope"]) == ("supervisor", "")
    assert me(client, token) == 401
    token = login(client, "wang", "wang-password").json()["access_token"]
    reset = client.post(f"{url}/password", json={"password": NEW_PASSWORD}, headers=admin)
    assert reset.status_code == 200
    assert me(client, token) == 401
    assert login(client, "wang", "wang-password").status_code == 401
    assert login(client, "wang", NEW_PASSWORD).status_code == 200

    with world.sessions() as session:
        audit = [(a.actor, a.action, a.target, a.detail) for a in session.scalars(
            select(AuditRow).order_by(AuditRow.id))]  # fmt: skip
    assert audit == [
        ("admin", "user.created", "user:wang", {"role": "dispatcher", "scope": "张家口市/张北县"}),
        ("admin", "user.updated", "user:wang", {"active": [True, False]}),
        ("admin", "user.updated", "user:wang", {"active": [False, True]}),
        ("admin", "user.updated", "user:wang", {
            "role": ["dispatcher", "supervisor"], "scope": ["张家口市/张北县", ""]}),
        ("admin", "user.password_reset", "user:wang", {}),
    ]  # fmt: skip
    assert "password" not in repr(audit).replace("password_reset", "")


def test_every_role_is_accepted_and_an_admin_keeps_their_own_account(world: ApiWorld) -> None:
    client, admin = world.client, world.headers("admin")
    with world.sessions() as session:
        ids = {u.username: u.id for u in session.scalars(select(UserRow))}
    for role in Role:
        response = client.patch(
            f"/api/v1/users/{ids['engineer']}", json={"role": role.value}, headers=admin
        )
        assert (response.status_code, response.json()["role"]) == (200, role.value)
    # Never themselves: so the caller, an active unscoped admin, always remains one.
    own = f"/api/v1/users/{ids['admin']}"
    for change in ({"active": False}, {"role": "dispatcher"}, {"scope": "张家口市"}):
        refused = client.patch(own, json=change, headers=admin)
        assert (refused.status_code, refused.json()) == (
            409,
            {"detail": "an admin does not change their own account here"},
        )
    password = client.post(f"{own}/password", json={"password": NEW_PASSWORD}, headers=admin)
    assert password.status_code == 409
    assert client.get("/api/v1/users", headers=admin).status_code == 200


def test_a_scoped_admin_administers_only_their_communities(world: ApiWorld) -> None:
    client, scoped = world.client, world.headers("zhangbei_admin")
    with world.sessions() as session:
        ids = {u.username: u.id for u in session.scalars(select(UserRow))}
    seen = {u["username"] for u in client.get("/api/v1/users", headers=scoped).json()["items"]}
    # The users whose scope lies within 张北县: its dispatcher, its admin and its visitor.
    zhangbei = USERS["zhangbei_admin"][1]
    assert seen == {name for name, (_, scope) in USERS.items() if in_scope(scope, zhangbei)}
    assert seen == {"zhangbei_dispatcher", "zhangbei_admin", "visitor"}
    for outside in ("", "张家口市/崇礼区", "张家口市"):
        body = {"username": "zhou", "password": "zhou-password", "role": "dispatcher"}
        refused = client.post("/api/v1/users", json={**body, "scope": outside}, headers=scoped)
        assert refused.status_code == 403, outside
    for name in ("chongli_dispatcher", "dispatcher", "admin"):
        response = client.patch(
            f"/api/v1/users/{ids[name]}", json={"active": False}, headers=scoped
        )
        assert (response.status_code, response.json()) == (404, {"detail": "user not found"})
    inside = f"/api/v1/users/{ids['zhangbei_dispatcher']}"
    assert client.patch(inside, json={"scope": "张家口市"}, headers=scoped).status_code == 403
    moved = client.patch(inside, json={"scope": "张家口市/张北县/花园街道"}, headers=scoped)
    assert moved.json()["scope"] == "张家口市/张北县/花园街道"
    for role in ("dispatcher", "supervisor", "engineer"):
        assert client.get("/api/v1/users", headers=world.headers(role)).status_code == 403
