"""Who may call what: every endpoint × every role, against one table; what each role sees of
an alert; and a district dispatcher kept out of another district (queue, detail, elder,
actions and stream).

Roles (issue #6): a dispatcher works the queue; a supervisor also handles escalations,
reassigns (releases another's alert) and reads the KPIs; an admin keeps users and the registry;
an engineer looks after devices, dead letters and telemetry, and sees no more personal data
than that needs. A visitor (issue #16, a community worker, always scoped) sees the visits and
elders of their community, claims and completes visits, and nothing of the queue or the fleet.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle, visit_store
from alerting.visits import VisitReason
from anxin.database import open_database, upgrade
from api.audit import record
from api.downlink import MqttDownlink
from api.streaming import StreamSettings, TimelineWatch
from api.tokens import Principal, TokenService
from api.users import Role, UserRow
from devices.elders import in_scope
from devices.registry import DeviceRow
from ingest.mqtt import BrokerAddress
from ingest.publisher import BrokerPublisher, PublisherOptions
from ingest.telemetry.sink_v1 import InfluxV1
from tests.support.api_world import (
    USERS,
    Registry,
    SseReader,
    add_registry,
    add_users,
    api_context,
    event_stream,
    raise_alert,
    serving,
)
from tests.support.influx import InfluxServer
from tests.support.mosquitto import running_mosquitto

D, S, A, E, V = "dispatcher", "supervisor", "admin", "engineer", "visitor"
ROLES = (D, S, A, E, V)
EVERYONE = frozenset(ROLES)
WORKERS = frozenset({D, S, A})
# The control room: everyone but visitors (who see visits and elders, not the queue or fleet).
STAFF = frozenset({D, S, A, E})
# Who sees people: not engineers.
PEOPLE = frozenset({D, S, A, V})
# Each role's user kept to 崇礼区, where 张秀英 does not live.
OUT_OF_SCOPE = {
    D: "chongli_dispatcher",
    S: "chongli_supervisor",
    A: "chongli_admin",
    E: "chongli_engineer",
    V: "chongli_visitor",
}
T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@dataclass
class Served:
    url: str
    sessions: sessionmaker[Session]
    registry: Registry
    tokens: TokenService
    devices: Iterator[int] = field(default_factory=itertools.count)

    def headers(self, user: str) -> dict[str, str]:
        role, scope = USERS[user]
        principal = Principal(username=user, role=role, scope=scope)
        token = self.tokens.issue(principal, datetime.now(UTC))
        return {"Authorization": f"Bearer {token}"}

    def new_alert(self, claimed_by: str | None = None, location: Any = None) -> int:
        """An SOS of 张秀英 on a device of its own; claimed by ``claimed_by`` if given."""
        with self.sessions.begin() as session:
            alert_id = raise_alert(
                session, f"m-{next(self.devices)}", self.registry.zhang, T0, location=location
            )
            if claimed_by is not None:
                lifecycle.claim(session, alert_id, actor=claimed_by, now=T0)
        return alert_id

    def new_visit(self) -> int:
        """An open visit to 张秀英, requested by hand."""
        with self.sessions.begin() as session:
            row = visit_store.request_visit(
                session,
                elder_id=self.registry.zhang,
                reason=VisitReason.MANUAL,
                due_at=T0,
                actor="dispatcher",
                now=T0,
            )
            return row.id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, influxd: InfluxServer) -> Iterator[Served]:
    folder: Path = tmp_path_factory.mktemp("matrix")
    influxd.create_database("role_matrix")
    engine, sessions = open_database(f"sqlite:///{folder / 'anxin.db'}")
    upgrade(engine)
    with sessions.begin() as session:
        add_users(session)
        registry = add_registry(session)
    # A real broker behind the downlink: Acks and Commands go somewhere, as in production.
    with running_mosquitto(folder) as mosquitto:
        publisher = BrokerPublisher(
            BrokerAddress(host=mosquitto.host, port=mosquitto.port),
            PublisherOptions(client_id="anxin-matrix-api"),
        )
        publisher.start()
        assert publisher.wait_connected(10)
        context = api_context(
            sessions,
            streams=TimelineWatch(StreamSettings(poll_s=0.1)),
            downlink=MqttDownlink(publisher.publish),
            telemetry=InfluxV1(influxd.url, "role_matrix"),  # a real store behind the reads
        )
        try:
            with serving(context) as url:
                yield Served(url, sessions, registry, context.tokens)
        finally:
            publisher.stop()
    engine.dispose()


# What a call needs before it is made: the path's ids and the body.
Prepare = Callable[[Served, str], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    allowed: frozenset[str]
    ok: int = 200
    prepare: Prepare = lambda _s, _u: ("", {})

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def on_new_alert(action: str, body: Any = None) -> Prepare:
    def prepare(served: Served, _user: str) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/alerts/{served.new_alert()}/{action}", {"json": body}

    return prepare


def on_own_alert(action: str, body: Any = None) -> Prepare:
    """On an alert the caller holds (engineers cannot claim: it is claimed for them)."""

    def prepare(served: Served, user: str) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/alerts/{served.new_alert(claimed_by=user)}/{action}", {"json": body}

    return prepare


def on_new_visit(action: str, body: Any = None) -> Prepare:
    def prepare(served: Served, _user: str) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/visits/{served.new_visit()}/{action}", {"json": body}

    return prepare


def with_path(path: Callable[[Served], str], **request: Any) -> Prepare:
    return lambda served, _user: (path(served), dict(request))


def new_device(served: Served, _user: str) -> tuple[str, dict[str, Any]]:
    device = {"id": f"d-{next(served.devices)}", "model": "sos-pendant"}
    return "/api/v1/devices", {"json": device}


def new_user(served: Served, scope: str = "张家口市/张北县/花园街道") -> int:
    """A dispatcher to administer (its hash stored as is: no Argon2 for a user never logged)."""
    with served.sessions.begin() as session:
        row = UserRow(
            username=f"u-{next(served.devices)}", password_hash="-", role="dispatcher", scope=scope
        )
        session.add(row)
        session.flush()
        return row.id


def on_new_user(action: str = "", **request: Any) -> Prepare:
    def prepare(served: Served, _user: str) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/users/{new_user(served)}{action}", dict(request)

    return prepare


USER_CALLS = [
    Call("GET", "/api/v1/users", frozenset({A})),
    Call("POST", "/api/v1/users", frozenset({A}), 201, lambda s, _u: ("/api/v1/users", {"json": {
        "username": f"n-{next(s.devices)}", "password": "a-good-password", "role": "visitor"
        if "visitor" in {r.value for r in Role} else "dispatcher", "scope": "张家口市/张北县"}})),
    Call("PATCH", "/api/v1/users/{id}", frozenset({A}), prepare=on_new_user(
        json={"active": False})),
    Call("POST", "/api/v1/users/{id}/password", frozenset({A}), prepare=on_new_user(
        "/password", json={"password": "a-new-password"})),
    Call("GET", "/api/v1/audit", frozenset({A})),
]  # fmt: skip

ELDER = {"name": "钱芳", "community": "张家口市/张北县"}
CSV = b"device_id,model\nimp-1,sos-pendant\n"

VISIT_CALLS = [
    Call("GET", "/api/v1/visits", PEOPLE),
    Call("POST", "/api/v1/visits", PEOPLE, 201, lambda s, _u: (
        "/api/v1/visits", {"json": {"elder_id": s.registry.zhang}})),
    Call("GET", "/api/v1/visits/{id}", PEOPLE, prepare=with_path(
        lambda s: f"/api/v1/visits/{s.new_visit()}")),
    Call("POST", "/api/v1/visits/{id}/assign", WORKERS, prepare=on_new_visit(
        "assign", {"assignee": "visitor"})),
    Call("POST", "/api/v1/visits/{id}/claim", PEOPLE, prepare=on_new_visit("claim")),
    Call("POST", "/api/v1/visits/{id}/cancel", WORKERS, prepare=on_new_visit("cancel")),
    Call("POST", "/api/v1/visits/{id}/complete", PEOPLE, prepare=on_new_visit(
        "complete", {"outcome": "well"})),
    Call("GET", "/api/v1/elders/{id}/visits", PEOPLE, prepare=with_path(
        lambda s: f"/api/v1/elders/{s.registry.zhang}/visits")),
]  # fmt: skip

CALLS = [
    Call("GET", "/api/v1/alerts", STAFF),
    Call("GET", "/api/v1/alerts/{id}", STAFF, prepare=with_path(
        lambda s: f"/api/v1/alerts/{s.new_alert()}")),
    Call("GET", "/api/v1/alerts/stream", STAFF),
    Call("POST", "/api/v1/alerts/{id}/claim", WORKERS, prepare=on_new_alert("claim")),
    Call("POST", "/api/v1/alerts/{id}/release", WORKERS, prepare=on_own_alert("release")),
    Call("POST", "/api/v1/alerts/{id}/acknowledge", WORKERS, prepare=on_own_alert("acknowledge")),
    Call("POST", "/api/v1/alerts/{id}/notes", WORKERS, prepare=on_new_alert(
        "notes", {"text": "已电话联系"})),
    Call("POST", "/api/v1/alerts/{id}/escalate", WORKERS, prepare=on_own_alert(
        "escalate", {"reason": "无应答"})),
    Call("POST", "/api/v1/alerts/{id}/resolve", WORKERS, prepare=on_own_alert(
        "resolve", {"outcome": "false_alarm"})),
    Call("GET", "/api/v1/elders", PEOPLE),
    Call("POST", "/api/v1/elders", frozenset({A}), 201, with_path(
        lambda _s: "/api/v1/elders", json=ELDER)),
    Call("GET", "/api/v1/elders/{id}", PEOPLE, prepare=with_path(
        lambda s: f"/api/v1/elders/{s.registry.zhang}")),
    Call("PATCH", "/api/v1/elders/{id}", frozenset({A}), prepare=with_path(
        lambda s: f"/api/v1/elders/{s.registry.zhang}", json={"address": "花园街3号"})),
    Call("GET", "/api/v1/devices", STAFF),
    Call("POST", "/api/v1/devices", frozenset({A, E}), 201, new_device),
    Call("GET", "/api/v1/devices/{id}", STAFF, prepare=with_path(
        lambda s: f"/api/v1/devices/{s.registry.zhang_device}")),
    Call("PATCH", "/api/v1/devices/{id}", frozenset({A, E}), prepare=with_path(
        lambda s: f"/api/v1/devices/{s.registry.zhang_device}", json={"room": "卧室"})),
    Call("POST", "/api/v1/devices/import", frozenset({A}), prepare=with_path(
        lambda _s: "/api/v1/devices/import", files={"file": ("fleet.csv", CSV, "text/csv")})),
    Call("GET", "/api/v1/devices/{id}/telemetry", STAFF, prepare=with_path(
        lambda s: f"/api/v1/devices/{s.registry.zhang_device}/telemetry")),
    Call("POST", "/api/v1/devices/{id}/commands", frozenset({A, E}), 202, with_path(
        lambda s: f"/api/v1/devices/{s.registry.zhang_device}/commands", json={"command": "ping"})),
    Call("GET", "/api/v1/dead-letters", frozenset({E, A})),
    Call("GET", "/api/v1/stats/kpis", frozenset({S, A})),
    Call("GET", "/api/v1/stats/visits", frozenset({S, A})),
    *VISIT_CALLS,
    *USER_CALLS,
]  # fmt: skip


def call(served: Served, spec: Call, user: str | None) -> int:
    path, request = spec.prepare(served, user or D)
    url = served.url + (path or spec.path)
    headers = served.headers(user) if user else {}
    if spec.path.endswith("/stream"):
        with httpx.Client() as client, client.stream("GET", url, headers=headers) as response:
            return response.status_code  # the headers are enough; closing ends the stream
    return httpx.request(spec.method, url, headers=headers, timeout=30, **request).status_code


def test_every_endpoint_for_every_role(served: Served) -> None:
    expected = {
        (str(spec), role): spec.ok if role in spec.allowed else 403
        for spec in CALLS
        for role in ROLES
    }
    observed = {(str(spec), role): call(served, spec, role) for spec in CALLS for role in ROLES}
    assert observed == expected
    anonymous = {str(spec): call(served, spec, None) for spec in CALLS}
    assert anonymous == {str(spec): 401 for spec in CALLS}
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert httpx.get(served.url + path).status_code == 200, path


def test_visits_for_every_role_in_and_out_of_scope(served: Served) -> None:
    """Each visit call by each role's user in 张秀英's scope and by one kept to 崇礼区: a role
    refused is 403 either way; out of scope, the visit or elder is not found (404) and the
    list is empty."""

    def out_of_scope(spec: Call, role: str) -> tuple[int, Any]:
        if role not in spec.allowed:
            return 403, None
        if spec.method == "GET" and spec.path == "/api/v1/visits":
            return 200, []
        return 404, None

    expected = {}
    observed = {}
    for spec in VISIT_CALLS:
        for role in ROLES:
            expected[(str(spec), role, "in")] = (spec.ok if role in spec.allowed else 403, None)
            observed[(str(spec), role, "in")] = (call(served, spec, role), None)
            expected[(str(spec), role, "out")] = out_of_scope(spec, role)
            observed[(str(spec), role, "out")] = scoped_call(served, spec, OUT_OF_SCOPE[role])
    assert observed == expected
    assert len(observed) == len(VISIT_CALLS) * len(ROLES) * 2


def scoped_call(served: Served, spec: Call, user: str) -> tuple[int, Any]:
    path, request = spec.prepare(served, user)
    response = httpx.request(
        spec.method,
        served.url + (path or spec.path),
        headers=served.headers(user),
        timeout=30,
        **request,
    )
    items = response.json().get("items") if response.status_code == 200 else None
    return response.status_code, items


def test_every_endpoint_is_in_the_table(served: Served) -> None:
    spec = httpx.get(f"{served.url}/openapi.json", timeout=60).json()
    documented = {
        f"{method.upper()} {path}".replace("{alert_id}", "{id}")
        .replace("{elder_id}", "{id}")
        .replace("{device_id}", "{id}")
        .replace("{visit_id}", "{id}")
        .replace("{user_id}", "{id}")
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/api/v1/") and path != "/api/v1/auth/token"
    }
    assert documented == {str(c) for c in CALLS}


def test_what_each_role_sees_of_an_alert(served: Served) -> None:
    alert_id = served.new_alert(claimed_by="dispatcher", location={"room": "卧室"})
    note = httpx.post(
        f"{served.url}/api/v1/alerts/{alert_id}/notes",
        json={"text": "女儿李明说老人在医院"},
        headers=served.headers(D),
    )
    assert note.status_code == 200

    def detail(user: str) -> dict[str, Any]:
        response = httpx.get(f"{served.url}/api/v1/alerts/{alert_id}", headers=served.headers(user))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    seen = detail(D)
    assert seen["elder"] == {
        "id": served.registry.zhang,
        "name": "张秀英",
        "phone": "13800138000",
        "address": "花园街3号",
        "community": "张家口市/张北县/花园街道/幸福社区",
        "location": None,
        "categories": ["living_alone", "advanced_age"],
        "medical_notes": "高血压",
        "key_safe_note": "钥匙在门口花盆下",
    }
    assert [(c["position"], c["name"], c["relation"]) for c in seen["contacts"]] == [
        (1, "李明", "family"),
        (2, "王大妈", "neighbour"),
    ]
    assert seen["device"] is None  # raised by a device not in the registry
    assert seen["location"] == {"room": "卧室"}
    assert seen["telemetry"] == []
    assert seen["timeline"][-1]["detail"] == {"text": "女儿李明说老人在医院"}

    engineer = detail(E)
    assert (engineer["elder"], engineer["contacts"], engineer["location"]) == (None, [], None)
    assert engineer["elder_id"] == served.registry.zhang
    assert engineer["timeline"][-1]["detail"] == {"text": "(withheld)"}
    listed = httpx.get(f"{served.url}/api/v1/alerts", headers=served.headers(E)).json()
    assert all(a["location"] is None for a in listed["items"])

    # A registered device shows as registered now.
    with served.sessions.begin() as session:
        registered = raise_alert(session, served.registry.zhang_device, served.registry.zhang, T0)
    device = httpx.get(
        f"{served.url}/api/v1/alerts/{registered}", headers=served.headers(E)
    ).json()["device"]
    assert {k: device[k] for k in ("id", "model", "room", "status", "online")} == {
        "id": "p-zhang",
        "model": "sos-pendant",
        "room": "卧室",
        "status": "active",
        "online": None,
    }


def test_a_district_dispatcher_is_kept_out_of_another_district(served: Served) -> None:
    zhangbei, chongli = "zhangbei_dispatcher", "chongli_dispatcher"
    assert USERS[chongli][1] == "张家口市/崇礼区"
    url = f"{served.url}/api/v1/alerts/stream"
    with (
        event_stream(url, served.headers(chongli)) as theirs,
        event_stream(url, served.headers(zhangbei)) as ours,
    ):
        alert_id = served.new_alert()  # 张秀英 lives in 张北县
        assert _event_of(ours, alert_id)
        assert theirs.nothing_more(within_s=1.0)
    as_chongli = served.headers(chongli)
    assert httpx.get(f"{served.url}/api/v1/alerts/{alert_id}", headers=as_chongli).json() == {
        "detail": "alert not found"
    }
    assert (
        httpx.get(f"{served.url}/api/v1/alerts/{alert_id}", headers=as_chongli).status_code == 404
    )
    elder = httpx.get(f"{served.url}/api/v1/elders/{served.registry.zhang}", headers=as_chongli)
    assert (elder.status_code, elder.json()) == (404, {"detail": "elder not found"})
    claim = httpx.post(f"{served.url}/api/v1/alerts/{alert_id}/claim", headers=as_chongli)
    assert claim.status_code == 404
    queue = httpx.get(f"{served.url}/api/v1/alerts?status=all", headers=as_chongli).json()
    assert queue["items"] == []
    ours_queue = httpx.get(f"{served.url}/api/v1/alerts", headers=served.headers(zhangbei)).json()
    assert alert_id in [a["id"] for a in ours_queue["items"]]


def _event_of(reader: SseReader, alert_id: int) -> bool:
    while True:
        if reader.next().json()["alert"]["id"] == alert_id:
            return True


def test_every_endpoint_is_documented_with_examples(served: Served) -> None:
    spec = httpx.get(f"{served.url}/openapi.json", timeout=60).json()
    schemas = spec["components"]["schemas"]

    def has_example(schema: dict[str, Any]) -> bool:
        if "$ref" in schema:
            return has_example(schemas[schema["$ref"].rsplit("/", 1)[-1]])
        if schema.get("examples"):
            return True
        items = schema.get("properties", {}).get("items")  # a page: its items' example
        return items is not None and has_example(items.get("items", {}))

    missing = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            responses = operation["responses"]
            ok = next(code for code in responses if code.startswith("2"))
            content = responses[ok]["content"]
            if not any(
                "example" in media or has_example(media.get("schema", {}))
                for media in content.values()
            ):
                missing.append(f"{name} {ok}")
            for code, response in responses.items():
                if code.startswith("4") and code != "422":
                    media = response.get("content", {}).get("application/json", {})
                    if "example" not in media:
                        missing.append(f"{name} {code}")
            if path != "/api/v1/auth/token" and "401" not in responses:
                missing.append(f"{name} 401")
    refusing = {str(c) for c in CALLS if c.allowed != EVERYONE}
    for call_name in refusing:
        method, path = call_name.split(" ")
        documented = {
            p.replace("{alert_id}", "{id}")
            .replace("{elder_id}", "{id}")
            .replace("{device_id}", "{id}")
            .replace("{visit_id}", "{id}")
            .replace("{user_id}", "{id}"): ops
            for p, ops in spec["paths"].items()
        }
        if "403" not in documented[path][method.lower()]["responses"]:
            missing.append(f"{call_name} 403")
    assert missing == []


def test_a_supervisor_lists_the_escalations(served: Served) -> None:
    escalated = served.new_alert(claimed_by="dispatcher")
    handed_up = httpx.post(
        f"{served.url}/api/v1/alerts/{escalated}/escalate",
        json={"reason": "无应答"},
        headers=served.headers(D),
    )
    assert handed_up.status_code == 200
    claimed = served.new_alert(claimed_by="dispatcher")
    listed = httpx.get(
        f"{served.url}/api/v1/alerts", params={"status": "escalated"}, headers=served.headers(S)
    ).json()["items"]
    ids = [a["id"] for a in listed]  # (the matrix escalated some too: one server per module)
    assert escalated in ids
    assert claimed not in ids
    assert {a["status"] for a in listed} == {"escalated"}


def test_who_may_command_a_device(served: Served) -> None:
    """Engineers and admins: any command to a device in scope. Dispatchers and supervisors:
    only `locate`, only a device with an open alert, in their scope."""
    with served.sessions.begin() as session:
        session.add(DeviceRow(id="p-zhang-2", model="sos-pendant", elder_id=served.registry.zhang))

    def command(user: str, body: Any, device: str = "p-zhang-2") -> tuple[int, Any]:
        response = httpx.post(
            f"{served.url}/api/v1/devices/{device}/commands",
            json=body,
            headers=served.headers(user),
        )
        return response.status_code, response.json()

    locate = {"command": "locate"}
    assert command(D, locate) == (403, {"detail": "a dispatcher may only locate a device "
                                        "with an open alert"})  # fmt: skip
    with served.sessions.begin() as session:
        raise_alert(session, "p-zhang-2", served.registry.zhang, T0)
    assert {u: command(u, locate)[0] for u in (D, S, "zhangbei_dispatcher")} == dict.fromkeys(
        (D, S, "zhangbei_dispatcher"), 202
    )
    assert command(D, {"command": "ping"}) == (
        403,
        {"detail": "the dispatcher role may only locate"},
    )
    assert command("chongli_dispatcher", locate) == (404, {"detail": "device not found"})
    assert command(E, locate, device="p-nobody") == (404, {"detail": "device not found"})
    status, body = command(A, {"command": "configure", "params": {"heartbeat_interval_s": 60}})
    assert status == 202
    assert body["device_id"] == "p-zhang-2"
    assert body["command"] == "configure"
    assert len(body["id"]) == 32
    for bad in (
        {"command": "reboot"},
        {"command": "ping", "params": []},
        {"command": "ping", "params": {"blob": "x" * 5000}},
        {"command": "ping", "extra": 1},
        {},
    ):
        assert command(E, bad)[0] == 422, bad


IN, OUT = "张家口市/张北县/花园街道", "张家口市/崇礼区"  # within zhangbei_admin's scope, and not


def test_users_and_audit_for_every_role_in_and_out_of_scope(served: Served) -> None:
    """Every user of USERS (each role, unscoped and district-scoped) × each users and audit
    route × a target within 张北县 and one outside it. Only admins pass; a scoped admin reaches
    the target within its scope only (404 outside, 403 for a scope it may not give), and lists
    and audits only what lies within."""
    with served.sessions.begin() as session:
        record(session, at=T0, actor="x", action="user.updated", target="user:in", community=IN)
        record(session, at=T0, actor="x", action="user.updated", target="user:out", community=OUT)

    def status(user: str, method: str, path: str, **request: Any) -> int:
        url = served.url + path
        return httpx.request(method, url, headers=served.headers(user), **request).status_code

    def listed(user: str, path: str, key: str) -> frozenset[str]:
        response = httpx.get(served.url + path, headers=served.headers(user))
        if response.status_code != 200:
            return frozenset({str(response.status_code)})
        return frozenset(item[key] for item in response.json()["items"])

    observed: dict[tuple[str, str, str], int | str] = {}
    for user in USERS:
        for where, scope in (("in", IN), ("out", OUT)):
            body = {"username": f"m-{next(served.devices)}", "password": "a-good-password",
                    "role": "dispatcher", "scope": scope}  # fmt: skip
            observed[user, "POST /users", where] = status(user, "POST", "/api/v1/users", json=body)
            target = new_user(served, scope)
            observed[user, "PATCH /users/{id}", where] = status(
                user, "PATCH", f"/api/v1/users/{target}", json={"active": False}
            )
            observed[user, "POST /users/{id}/password", where] = status(
                user, "POST", f"/api/v1/users/{target}/password", json={"password": "p" * 8}
            )
            users = listed(user, "/api/v1/users?limit=500", "scope")
            observed[user, "GET /users", where] = "403" if "403" in users else scope in users
            audit = listed(user, "/api/v1/audit?limit=500", "target")
            observed[user, "GET /audit", where] = (
                "403" if "403" in audit else f"user:{where}" in audit
            )

    def expected(user: str, route: str, where: str) -> int | str:
        role, scope = USERS[user]
        if role != Role.ADMIN:
            return "403" if route.startswith("GET") else 403
        reaches = in_scope(IN if where == "in" else OUT, scope)  # "" reaches everywhere
        if route.startswith("GET"):
            return reaches
        if route == "POST /users":
            return 201 if reaches else 403
        return 200 if reaches else 404

    assert observed == {key: expected(*key) for key in observed}
    assert len(observed) == len(USERS) * 5 * 2
