"""An API app with a user of each role and a small registry in two districts, for tests that
call the HTTP API; and a reader of Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerting.decisions import RaiseAlert
from alerting.feed import AlertFeed
from alerting.model import ALERT_KINDS, AlertType
from alerting.store import raise_or_coalesce
from api.app import create_app
from api.deps import ApiContext
from api.tokens import Principal, TokenService
from api.users import Role, UserRow, hash_password
from devices.clock import Clock
from devices.elders import ContactRow, ElderRow
from devices.registry import DeviceRow
from tests.support.ports import free_port

PASSWORD = "a-good-password"
SECRET = "k" * 40
ZHANGBEI = "张家口市/张北县"
CHONGLI = "张家口市/崇礼区"

# name → (role, scope). Each role unscoped, and district dispatchers and admins.
USERS: dict[str, tuple[Role, str]] = {
    "dispatcher": (Role.DISPATCHER, ""),
    "zhangbei_dispatcher": (Role.DISPATCHER, ZHANGBEI),
    "chongli_dispatcher": (Role.DISPATCHER, CHONGLI),
    "supervisor": (Role.SUPERVISOR, ""),
    "admin": (Role.ADMIN, ""),
    "zhangbei_admin": (Role.ADMIN, ZHANGBEI),
    "engineer": (Role.ENGINEER, ""),
    # Community workers: one in 张秀英's community, one in 崇礼区.
    "visitor": (Role.VISITOR, f"{ZHANGBEI}/花园街道/幸福社区"),
    "chongli_visitor": (Role.VISITOR, CHONGLI),
    # Each other role kept to 崇礼区 too: the role matrix's "out of scope" column.
    "chongli_supervisor": (Role.SUPERVISOR, CHONGLI),
    "chongli_admin": (Role.ADMIN, CHONGLI),
    "chongli_engineer": (Role.ENGINEER, CHONGLI),
}

_HASH: list[str] = []


def add_users(session: Session, users: dict[str, tuple[Role, str]] = USERS) -> None:
    """The users, all with PASSWORD (one Argon2 hash for all: each costs ~0.2 s)."""
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))
    for name, (role, scope) in users.items():
        session.add(UserRow(username=name, password_hash=_HASH[0], role=role.value, scope=scope))


@dataclass(frozen=True)
class Registry:
    """张秀英 in 张北县 with pendant ``p-zhang``; 赵强 in 崇礼区 with pendant ``p-zhao``."""

    zhang: int
    zhao: int
    zhang_device: str = "p-zhang"
    zhao_device: str = "p-zhao"


def add_registry(session: Session) -> Registry:
    zhang = ElderRow(
        name="张秀英",
        phone="13800138000",
        address="花园街3号",
        community=f"{ZHANGBEI}/花园街道/幸福社区",
        categories=["living_alone", "advanced_age"],
        medical_notes="高血压",
        key_safe_note="钥匙在门口花盆下",
        contacts=[
            ContactRow(position=1, name="李明", phone="13900139000", relation="family"),
            ContactRow(position=2, name="王大妈", phone="13700137000", relation="neighbour"),
        ],
    )
    zhao = ElderRow(name="赵强", phone="13500135000", community=f"{CHONGLI}/西湾子镇")
    session.add_all([zhang, zhao])
    session.flush()
    session.add_all(
        [
            DeviceRow(id="p-zhang", model="sos-pendant", elder_id=zhang.id, room="卧室"),
            DeviceRow(id="p-zhao", model="sos-pendant", elder_id=zhao.id),
        ]
    )
    return Registry(zhang=zhang.id, zhao=zhao.id)


def raise_alert(
    session: Session,
    device_id: str,
    elder_id: int | None,
    now: datetime,
    alert: AlertType = AlertType.SOS,
    location: dict[str, Any] | None = None,
) -> int:
    kind = ALERT_KINDS[alert]
    decision = RaiseAlert(
        device_id=device_id,
        elder_id=elder_id,
        type=alert,
        category=kind.category,
        priority=kind.priority,
        occurred_at=now,
        location=location,
    )
    return raise_or_coalesce(session, decision, now).alert_id


@dataclass
class ApiWorld:
    """The app on real sessions, with USERS and (unless left out) a Registry."""

    client: TestClient
    sessions: sessionmaker[Session]
    context: ApiContext
    registry: Registry | None
    tokens: TokenService = field(default_factory=lambda: TokenService(SECRET))

    def token(self, user: str) -> str:
        """Issued directly for USERS (no Argon2 check); by logging in for anyone else."""
        if user not in USERS:
            response = self.client.post(
                "/api/v1/auth/token", data={"username": user, "password": PASSWORD}
            )
            token: str = response.json()["access_token"]
            return token
        role, scope = USERS[user]
        principal = Principal(username=user, role=role, scope=scope)
        return self.tokens.issue(principal, datetime.now(UTC))

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


def api_context(
    sessions: sessionmaker[Session],
    clock: Clock | None = None,
    feed: AlertFeed | None = None,
    **more: Any,
) -> ApiContext:
    return ApiContext(
        sessions=sessions,
        tokens=TokenService(SECRET),
        feed=feed or AlertFeed(),
        clock=clock or (lambda: datetime.now(UTC)),
        **more,
    )


@contextmanager
def api_world(
    sessions: sessionmaker[Session],
    clock: Clock | None = None,
    *,
    with_registry: bool = True,
    **more: Any,
) -> Iterator[ApiWorld]:
    with sessions.begin() as session:
        add_users(session)
        registry = add_registry(session) if with_registry else None
    context = api_context(sessions, clock, **more)
    with TestClient(create_app(context)) as client:
        yield ApiWorld(client, sessions, context, registry, context.tokens)


@contextmanager
def serving(context: ApiContext) -> Iterator[str]:
    """The app on a real uvicorn server on a thread (streams need one: the TestClient waits for
    a response to end); its base URL. Stopped as ``anxin`` stops it: streams first."""
    port = free_port()
    config = uvicorn.Config(
        create_app(context), host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(context.streams.close)
        server.should_exit = True
        thread.join(timeout=20)
        loop.close()


# Server-Sent Events.


@dataclass(frozen=True)
class Sse:
    """One event, or a comment (``event`` "comment", the text in ``data``)."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Reads an event stream on a thread; ``next()`` hands over events (comments too)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._items: queue.Queue[Sse | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, list[str]] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self._items.put(Sse(event="comment", data=line[1:].strip()))
                elif line == "":
                    if fields:
                        self._items.put(
                            Sse(
                                event=fields.get("event", ["message"])[-1],
                                data="\n".join(fields.get("data", [])),
                                id=fields.get("id", [None])[-1],  # type: ignore[list-item]
                            )
                        )
                    fields = {}
                else:
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value.removeprefix(" "))
            self._items.put(EOFError("the server ended the stream"))
        except BaseException as exc:  # the stream was closed: the readers learn it
            self._items.put(exc)

    def next(self, within_s: float = 10.0, *, comments: bool = False) -> Sse:
        """The next event (skipping keep-alive comments unless ``comments``)."""
        deadline = time.monotonic() + within_s
        while True:
            item = self._items.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(item, BaseException):
                raise item
            if comments or item.event != "comment":
                return item

    def nothing_more(self, within_s: float) -> bool:
        """True when no event (comments aside) arrives within ``within_s``."""
        try:
            self.next(within_s)
        except queue.Empty:
            return True
        return False


@contextmanager
def event_stream(
    url: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> Iterator[SseReader]:
    with (
        httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client,
        client.stream("GET", url, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        yield SseReader(response)
