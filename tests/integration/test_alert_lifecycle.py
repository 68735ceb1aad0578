"""The alert lifecycle: the transition table, the store's atomic claim, and the actions over HTTP
(roles, scopes, errors, the timeline, the Acks to the device, the change feed), on SQLite and
PostgreSQL through the ``sessions`` fixture."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle
from alerting.decisions import RaiseAlert
from alerting.feed import AlertFeed
from alerting.lifecycle import (
    HOLDER_ACTIONS,
    TRANSITIONS,
    Action,
    ClaimConflict,
    InvalidTransition,
    NotHolder,
)
from alerting.model import ALERT_KINDS, AlertStatus, AlertType, Outcome
from alerting.store import AlertChange, AlertRow, ChangeKind, get_timeline, raise_or_coalesce
from api.app import create_app
from api.downlink import DeviceDownlink, DownlinkUnavailableError, MqttDownlink
from api.tokens import Principal, TokenService
from api.users import Role
from devices.elders import ElderRow
from devices.payloads import AckPayload, AckStatus, CommandPayload
from tests.support.api_world import add_users, api_context

T = TypeVar("T")
T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
WITHIN_S = 20.0
ZHANGBEI = "张家口市/张北县/花园街道/幸福社区"

USERS = {
    "wang": (Role.DISPATCHER, ""),
    "li": (Role.DISPATCHER, ""),
    "zhangbei": (Role.DISPATCHER, "张家口市/张北县"),
    "chongli": (Role.DISPATCHER, "张家口市/崇礼区"),
    "boss": (Role.SUPERVISOR, ""),
    "root": (Role.ADMIN, ""),
    "fixer": (Role.ENGINEER, ""),
}

# The pure table.

S = AlertStatus


def test_the_transition_table_is_the_state_machine() -> None:
    expected = {
        Action.CLAIM: {S.NEW: S.CLAIMED, S.ESCALATED: S.CLAIMED},
        Action.RELEASE: {S.CLAIMED: S.NEW, S.ACKNOWLEDGED: S.NEW, S.ESCALATED: S.NEW},
        Action.ACKNOWLEDGE: {S.CLAIMED: S.ACKNOWLEDGED, S.ESCALATED: S.ESCALATED},
        Action.NOTE: {s: s for s in S},
        Action.ESCALATE: {S.CLAIMED: S.ESCALATED, S.ACKNOWLEDGED: S.ESCALATED},
        Action.RESOLVE: {
            S.CLAIMED: S.RESOLVED,
            S.ACKNOWLEDGED: S.RESOLVED,
            S.ESCALATED: S.RESOLVED,
        },
        Action.AUTO_RESOLVE: {
            s: S.RESOLVED for s in (S.NEW, S.CLAIMED, S.ACKNOWLEDGED, S.ESCALATED)
        },
        Action.CANCEL: {s: S.CANCELLED for s in (S.NEW, S.CLAIMED, S.ACKNOWLEDGED, S.ESCALATED)},
    }
    assert {a: dict(t) for a, t in TRANSITIONS.items()} == expected
    # Resolved and cancelled are the end: only a note may follow.
    for action, status in itertools.product(Action, (S.RESOLVED, S.CANCELLED)):
        if action is Action.NOTE:
            assert lifecycle.next_status(1, action, status) is status
        else:
            with pytest.raises(InvalidTransition, match=f"it is {status.value}"):
                lifecycle.next_status(1, action, status)


def test_only_the_holder_or_an_overrider_acts_on_a_claimed_alert() -> None:
    assert {Action.RELEASE, Action.ACKNOWLEDGE, Action.ESCALATE, Action.RESOLVE} == HOLDER_ACTIONS
    for action in HOLDER_ACTIONS:
        lifecycle.check_holder(1, action, "wang", "wang", may_override=False)
        lifecycle.check_holder(1, action, "wang", "boss", may_override=True)
        with pytest.raises(NotHolder, match="held by wang"):
            lifecycle.check_holder(1, action, "wang", "li", may_override=False)
    lifecycle.check_holder(1, Action.NOTE, "wang", "li", may_override=False)


# The store.


def raise_sos(session: Session, device_id: str, elder_id: int | None = None) -> int:
    kind = ALERT_KINDS[AlertType.SOS]
    decision = RaiseAlert(
        device_id=device_id,
        elder_id=elder_id,
        type=AlertType.SOS,
        category=kind.category,
        priority=kind.priority,
        occurred_at=T0,
    )
    return raise_or_coalesce(session, decision, T0).alert_id


def in_threads(*work: Callable[[], T]) -> list[T | BaseException]:
    """Run each callable on its own thread; each one's result or the exception it raised."""
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(job) for job in work]
        return [f.exception(timeout=WITHIN_S * 2) or f.result() for f in futures]


def test_two_dispatchers_claiming_at_the_same_moment_one_wins(
    sessions: sessionmaker[Session],
) -> None:
    """Each thread reads the alert as new, waits for the other, then claims: the check-then-act
    race, twenty times over. Exactly one claim wins each time; the other names the winner."""
    with sessions.begin() as session:
        alert_ids = [raise_sos(session, f"p{i}") for i in range(20)]

    def claimer(name: str, alert_id: int, start: threading.Barrier) -> Callable[[], str]:
        def run() -> str:
            with sessions.begin() as session:
                seen = session.get(AlertRow, alert_id)
                assert seen is not None
                assert seen.status == "new"
                start.wait()
                lifecycle.claim(session, alert_id, actor=name, now=T0)
            return name

        return run

    for alert_id in alert_ids:
        start = threading.Barrier(2, timeout=WITHIN_S)
        outcomes = in_threads(claimer("wang", alert_id, start), claimer("li", alert_id, start))
        winners = [o for o in outcomes if isinstance(o, str)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1, outcomes
        assert isinstance(losers[0], ClaimConflict), repr(losers[0])
        assert losers[0].holder == winners[0]
        assert str(losers[0]) == f"alert {alert_id} is already claimed by {winners[0]}"
        with sessions() as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None
            assert (row.status, row.claimed_by) == ("claimed", winners[0])
            claims = [e for e in get_timeline(session, alert_id) if e.action == "claimed"]
        assert [e.actor for e in claims] == winners


def backend_waits_on_a_lock(url: str, pid: int) -> bool | None:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return True if row is not None and row[0] == "Lock" else None


def test_a_claim_that_waits_on_an_uncommitted_claim_loses_to_it(
    sessions: sessionmaker[Session],
) -> None:
    """The hard interleaving, imposed: the second claim's UPDATE runs while the first is still
    uncommitted (PostgreSQL: it waits on the row lock; SQLite: on the database's write lock),
    and must then see the first claim, not overwrite it."""
    with sessions.begin() as session:
        alert_id = raise_sos(session, "p1")
    postgres = sessions.kw["bind"].dialect.name == "postgresql"
    first_claimed = threading.Event()
    second_pid: list[int] = []

    def first() -> str:
        with sessions.begin() as session:
            lifecycle.claim(session, alert_id, actor="wang", now=T0)
            first_claimed.set()
            if postgres:
                url = sessions.kw["bind"].url.render_as_string(hide_password=False)
                url = url.replace("postgresql+psycopg://", "postgresql://")
                deadline = time.monotonic() + WITHIN_S
                while not second_pid or not backend_waits_on_a_lock(url, second_pid[0]):
                    assert time.monotonic() < deadline, "the second claim never waited"
                    time.sleep(0.02)
            else:
                time.sleep(0.5)  # the second claim is now waiting for the write lock
        return "wang"

    def second() -> str:
        with sessions.begin() as session:
            if postgres:
                second_pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            assert first_claimed.wait(WITHIN_S)
            lifecycle.claim(session, alert_id, actor="li", now=T0 + timedelta(seconds=1))
        return "li"

    won, lost = in_threads(first, second)
    assert won == "wang"
    assert isinstance(lost, ClaimConflict), repr(lost)
    assert lost.holder == "wang"
    with sessions() as session:
        row = session.get(AlertRow, alert_id)
        assert row is not None
        assert (row.claimed_by, row.claimed_at) == ("wang", T0)


def test_the_store_refuses_what_the_table_refuses(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        alert_id = raise_sos(session, "p1")
    with sessions.begin() as session, pytest.raises(InvalidTransition, match="it is new"):
        lifecycle.resolve(
            session,
            alert_id,
            actor="wang",
            now=T0,
            outcome=Outcome.FALSE_ALARM,
            note=None,
            may_override=False,
        )
    with sessions.begin() as session:
        lifecycle.claim(session, alert_id, actor="wang", now=T0)
    with sessions.begin() as session, pytest.raises(NotHolder):
        lifecycle.escalate(
            session, alert_id, actor="li", now=T0, reason="需要主管", may_override=False
        )
    with sessions.begin() as session, pytest.raises(lifecycle.AlertNotFound):
        lifecycle.claim(session, alert_id + 1000, actor="wang", now=T0)
    with sessions.begin() as session, pytest.raises(lifecycle.InvalidInput):
        lifecycle.add_note(session, alert_id, actor="wang", now=T0, text="  ")
    with sessions() as session:
        assert [e.action for e in get_timeline(session, alert_id)] == ["created", "claimed"]


# Over HTTP.


@dataclass
class Ticking:
    """A clock that moves one second each time it is read."""

    at: datetime = T0
    read: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        self.read.append(self.at)
        return self.at


@dataclass
class RecordingDownlink:
    sent: list[tuple[str, AckPayload]] = field(default_factory=list)
    commands: list[tuple[str, CommandPayload]] = field(default_factory=list)
    fail: bool = False

    def send_ack(self, device_id: str, ack: AckPayload) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.append((device_id, ack))

    def send_command(self, device_id: str, command: CommandPayload) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.commands.append((device_id, command))


class RecordingFeed(AlertFeed):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[AlertChange] = []
        self.off_loop: list[AlertChange] = []

    def publish(self, changes: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: its queues would be used unsafely
            self.off_loop.extend(changes)
        self.published.extend(changes)
        super().publish(changes)


@dataclass
class Api:
    client: TestClient
    sessions: sessionmaker[Session]
    clock: Ticking
    downlink: Any  # a RecordingDownlink, or None
    feed: RecordingFeed
    tokens: TokenService
    elder_id: int

    def headers(self, user: str) -> dict[str, str]:
        role, scope = USERS[user]
        token = self.tokens.issue(
            Principal(username=user, role=role, scope=scope), datetime.now(UTC)
        )
        return {"Authorization": f"Bearer {token}"}

    def post(self, user: str, alert_id: int | str, action: str, body: Any = None) -> Any:
        return self.client.post(
            f"/api/v1/alerts/{alert_id}/{action}", json=body, headers=self.headers(user)
        )

    def new_alert(self, device_id: str) -> int:
        with self.sessions.begin() as session:
            return raise_sos(session, device_id, self.elder_id)


@contextmanager
def running_api(sessions: sessionmaker[Session], downlink: DeviceDownlink | None) -> Iterator[Api]:
    """The app on these sessions, with an elder in 张北县 whose alerts the tests raise."""
    with sessions.begin() as session:
        elder = ElderRow(name="张秀英", community=ZHANGBEI)
        session.add(elder)
        session.flush()
        elder_id = elder.id
        add_users(session, USERS)  # a token is good only while its user is
    clock, feed = Ticking(), RecordingFeed()
    context = api_context(sessions, clock, feed, downlink=downlink)
    with TestClient(create_app(context)) as client:
        yield Api(client, sessions, clock, downlink, feed, context.tokens, elder_id)


@pytest.fixture
def api(sessions: sessionmaker[Session]) -> Iterator[Api]:
    with running_api(sessions, RecordingDownlink()) as running:
        yield running


def test_claim_acknowledge_note_resolve_and_the_timeline_says_who_and_when(api: Api) -> None:
    alert_id = api.new_alert("p-017")

    claimed = api.post("wang", alert_id, "claim")
    assert claimed.status_code == 200, claimed.text
    t_claim = api.clock.at
    body = claimed.json()
    assert (body["status"], body["claimed_by"]) == ("claimed", "wang")
    assert datetime.fromisoformat(body["claimed_at"]) == t_claim
    assert [e["action"] for e in body["timeline"]] == ["created", "claimed"]
    assert api.downlink.sent == [
        (
            "p-017",
            AckPayload(
                alert_id=alert_id,
                status=AckStatus.CLAIMED,
                message="调度员已接到您的呼叫，正在处理。",
            ),
        )
    ]

    acknowledged = api.post("wang", alert_id, "acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text
    t_ack = api.clock.at
    assert acknowledged.json()["status"] == "acknowledged"
    assert api.downlink.sent[1:] == [
        (
            "p-017",
            AckPayload(
                alert_id=alert_id,
                status=AckStatus.HELP_COMING,
                message="工作人员正在赶来，请保持冷静。",
            ),
        )
    ]

    noted = api.post("wang", alert_id, "notes", {"text": "已电话联系老人，老人说摔倒了。"})
    assert noted.status_code == 200, noted.text
    t_note = api.clock.at
    assert noted.json()["status"] == "acknowledged"

    resolved = api.post(
        "wang",
        alert_id,
        "resolve",
        {"outcome": "community_worker_dispatched", "note": "网格员已上门，老人无碍。"},
    )
    assert resolved.status_code == 200, resolved.text
    t_resolve = api.clock.at
    body = resolved.json()
    assert (body["status"], body["outcome"], body["claimed_by"]) == (
        "resolved",
        "community_worker_dispatched",
        "wang",
    )
    assert datetime.fromisoformat(body["resolved_at"]) == t_resolve
    _, resolved_ack = api.downlink.sent[-1]
    assert (resolved_ack.alert_id, resolved_ack.status) == (alert_id, AckStatus.RESOLVED)
    assert resolved_ack.message
    assert [a.status for _, a in api.downlink.sent] == [
        AckStatus.CLAIMED,
        AckStatus.HELP_COMING,
        AckStatus.RESOLVED,
    ]

    # The answer has the same shape as GET /alerts/{id}, and the timeline lists every action.
    read = api.client.get(f"/api/v1/alerts/{alert_id}", headers=api.headers("wang")).json()
    assert read == body
    timeline = [
        (e["action"], e["actor"], datetime.fromisoformat(e["at"])) for e in read["timeline"]
    ]
    assert timeline == [
        ("created", "device:p-017", T0),
        ("claimed", "wang", t_claim),
        ("acknowledged", "wang", t_ack),
        ("note", "wang", t_note),
        ("resolved", "wang", t_resolve),
    ]
    details = [e["detail"] for e in read["timeline"]]
    assert details[1] == {"ack": "claimed"}
    assert details[2] == {"from": "claimed", "ack": "help_coming"}
    assert details[3] == {"text": "已电话联系老人，老人说摔倒了。"}
    assert details[4] == {
        "from": "acknowledged",
        "outcome": "community_worker_dispatched",
        "note": "网格员已上门，老人无碍。",
        "ack": "resolved",
    }

    # Every change went to the feed, on the event loop, as an update.
    assert [c.kind for c in api.feed.published] == [ChangeKind.UPDATED] * 4
    assert {c.alert_id for c in api.feed.published} == {alert_id}
    assert api.feed.off_loop == []


# Who may do what, from which status. Each case: the alert's state, the caller, the expected
# HTTP status and (when 200) the alert's status after.
NEW = ()
CLAIMED = (("claim", "wang"),)
ACKNOWLEDGED = (*CLAIMED, ("acknowledge", "wang"))
ESCALATED = (*CLAIMED, ("escalate", "wang"))
RESOLVED = (*CLAIMED, ("resolve", "wang"))
CANCELLED = ("cancelled",)
Setup = tuple[Any, ...]

EVERYONE_ELSE: list[tuple[Setup, str, int, str | None]] = [
    (CLAIMED, "fixer", 403, None),  # engineers do not work alerts
    (CLAIMED, "chongli", 404, None),  # another district's alert does not exist for them
]

MATRIX: dict[str, list[tuple[Setup, str, int, str | None]]] = {
    "claim": [
        (NEW, "wang", 200, "claimed"),
        (NEW, "zhangbei", 200, "claimed"),
        (NEW, "boss", 200, "claimed"),
        (NEW, "root", 200, "claimed"),
        (NEW, "fixer", 403, None),
        (NEW, "chongli", 404, None),
        (CLAIMED, "wang", 200, "claimed"),  # one's own claim again: nothing changes
        (CLAIMED, "li", 409, None),
        (CLAIMED, "boss", 409, None),
        (ESCALATED, "li", 409, None),
        (RESOLVED, "li", 409, None),
        (CANCELLED, "wang", 409, None),
    ],
    "release": [
        (CLAIMED, "wang", 200, "new"),
        (ACKNOWLEDGED, "wang", 200, "new"),
        (ESCALATED, "boss", 200, "new"),
        (CLAIMED, "root", 200, "new"),
        (CLAIMED, "li", 403, None),
        (NEW, "wang", 409, None),
        (RESOLVED, "wang", 409, None),
        *EVERYONE_ELSE,
    ],
    "acknowledge": [
        (CLAIMED, "wang", 200, "acknowledged"),
        (CLAIMED, "boss", 200, "acknowledged"),
        (ESCALATED, "wang", 200, "escalated"),
        (CLAIMED, "li", 403, None),
        (NEW, "wang", 409, None),
        (ACKNOWLEDGED, "wang", 409, None),
        (RESOLVED, "wang", 409, None),
        *EVERYONE_ELSE,
    ],
    "notes": [
        (NEW, "li", 200, "new"),
        (CLAIMED, "li", 200, "claimed"),  # anyone who works alerts, any time
        (RESOLVED, "wang", 200, "resolved"),
        (CANCELLED, "boss", 200, "cancelled"),
        *EVERYONE_ELSE,
    ],
    "escalate": [
        (CLAIMED, "wang", 200, "escalated"),
        (ACKNOWLEDGED, "wang", 200, "escalated"),
        (CLAIMED, "boss", 200, "escalated"),
        (CLAIMED, "li", 403, None),
        (NEW, "wang", 409, None),
        (ESCALATED, "wang", 409, None),
        (RESOLVED, "wang", 409, None),
        *EVERYONE_ELSE,
    ],
    "resolve": [
        (CLAIMED, "wang", 200, "resolved"),
        (ACKNOWLEDGED, "wang", 200, "resolved"),
        (ESCALATED, "boss", 200, "resolved"),
        (CLAIMED, "root", 200, "resolved"),
        (CLAIMED, "li", 403, None),
        (NEW, "wang", 409, None),
        (RESOLVED, "wang", 409, None),
        (CANCELLED, "wang", 409, None),
        *EVERYONE_ELSE,
    ],
}
BODIES: dict[str, Any] = {
    "notes": {"text": "已联系家属。"},
    "escalate": {"reason": "老人无应答。"},
    "resolve": {"outcome": "resolved_by_phone"},
}


def put_in_state(api: Api, alert_id: int, setup: Setup) -> None:
    if setup == CANCELLED:
        with api.sessions.begin() as session:
            session.execute(
                update(AlertRow).where(AlertRow.id == alert_id).values(status="cancelled")
            )
        return
    for action, user in setup:
        response = api.post(user, alert_id, action, BODIES.get(action))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("action", list(MATRIX))
def test_who_may_do_what_from_which_status(api: Api, action: str) -> None:
    for number, (setup, user, expected, after) in enumerate(MATRIX[action]):
        alert_id = api.new_alert(f"{action}-{number}")
        put_in_state(api, alert_id, setup)
        with api.sessions() as session:
            before = [e.action for e in get_timeline(session, alert_id)]
        response = api.post(user, alert_id, action, BODIES.get(action))
        case = f"{action} by {user} after {setup}: {response.text}"
        assert response.status_code == expected, case
        assert isinstance(response.json()["detail" if expected != 200 else "id"], str | int)
        with api.sessions() as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None
            timeline = [e.action for e in get_timeline(session, alert_id)]
        if expected == 200:
            assert row.status == after, case
            assert response.json()["status"] == after, case
            assert response.json()["timeline"][-1]["actor"] == user, case
        else:
            assert timeline == before, f"a refused action left a trace: {case}"


def test_the_loser_of_a_claim_race_over_http_gets_409_naming_the_winner(api: Api) -> None:
    alert_id = api.new_alert("p-1")
    start = threading.Barrier(2, timeout=WITHIN_S)

    def claim(user: str) -> Callable[[], Any]:
        headers = api.headers(user)

        def run() -> Any:
            start.wait()
            return api.client.post(f"/api/v1/alerts/{alert_id}/claim", headers=headers)

        return run

    responses = in_threads(claim("wang"), claim("li"))
    codes = sorted(r.status_code for r in responses if not isinstance(r, BaseException))
    assert codes == [200, 409], responses
    (won,) = [r for r in responses if not isinstance(r, BaseException) and r.status_code == 200]
    (lost,) = [r for r in responses if not isinstance(r, BaseException) and r.status_code == 409]
    winner = won.json()["claimed_by"]
    assert lost.json() == {"detail": f"alert {alert_id} is already claimed by {winner}"}


def test_resolve_checks_its_outcome_and_happens_once(api: Api) -> None:
    alert_id = api.new_alert("p-1")
    api.post("wang", alert_id, "claim")
    for bad in ({"outcome": "sorted_out"}, {}, {"outcome": "other", "note": "x" * 2001}):
        response = api.post("wang", alert_id, "resolve", bad)
        assert response.status_code == 422, bad
    first = api.post("wang", alert_id, "resolve", {"outcome": "false_alarm", "note": ""})
    assert first.status_code == 200, first.text
    assert "note" not in first.json()["timeline"][-1]["detail"]  # an empty note is no note
    again = api.post("wang", alert_id, "resolve", {"outcome": "ambulance_120"})
    assert again.status_code == 409
    assert again.json()["detail"].startswith(f"cannot resolve alert {alert_id}: it is resolved")
    assert (
        api.client.get(f"/api/v1/alerts/{alert_id}", headers=api.headers("wang")).json()["outcome"]
        == "false_alarm"
    )
    assert len([a for _, a in api.downlink.sent if a.status is AckStatus.RESOLVED]) == 1
    # Notes are still welcome afterwards.
    later = api.post("li", alert_id, "notes", {"text": "家属来电致谢。"})
    assert later.status_code == 200
    assert later.json()["timeline"][-1]["detail"] == {"text": "家属来电致谢。"}


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("notes", {"text": ""}),
        ("notes", {"text": "   "}),
        ("notes", {"text": "字" * 2001}),
        ("notes", {}),
        ("escalate", {}),
        ("escalate", {"reason": " "}),
        ("escalate", {"reason": "x" * 501}),
    ],
)
def test_notes_and_reasons_are_checked(api: Api, action: str, body: Any) -> None:
    alert_id = api.new_alert("p-1")
    api.post("wang", alert_id, "claim")
    response = api.post("wang", alert_id, action, body)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_unknown_alerts_and_missing_tokens(api: Api) -> None:
    assert api.post("wang", 999, "claim").status_code == 404
    assert api.post("wang", 999, "notes", {"text": "x"}).status_code == 404
    assert api.client.post("/api/v1/alerts/1/claim").status_code == 401
    assert api.post("wang", "abc", "claim").status_code == 422


def test_an_alert_of_an_unknown_elder_is_outside_every_scope(api: Api) -> None:
    with api.sessions.begin() as session:
        alert_id = raise_sos(session, "stranger")
    assert api.post("zhangbei", alert_id, "claim").status_code == 404
    assert api.post("wang", alert_id, "claim").status_code == 200


def test_a_supervisor_sees_an_escalation_and_resolves_it(api: Api) -> None:
    alert_id = api.new_alert("p-1")
    api.post("wang", alert_id, "claim")
    escalated = api.post("wang", alert_id, "escalate", {"reason": "老人无应答，家属联系不上。"})
    assert escalated.status_code == 200
    queue = api.client.get("/api/v1/alerts", headers=api.headers("boss")).json()["items"]
    assert [(a["id"], a["status"], a["claimed_by"]) for a in queue] == [
        (alert_id, "escalated", "wang")
    ]
    told = api.post("boss", alert_id, "acknowledge")
    assert told.json()["status"] == "escalated"  # still escalated, and the device knows
    resolved = api.post("boss", alert_id, "resolve", {"outcome": "ambulance_120"})
    assert resolved.status_code == 200
    actors = [(e["action"], e["actor"]) for e in resolved.json()["timeline"]]
    assert actors[-3:] == [("escalated", "wang"), ("acknowledged", "boss"), ("resolved", "boss")]
    assert resolved.json()["timeline"][-3]["detail"]["reason"] == "老人无应答，家属联系不上。"


def test_a_release_gives_the_alert_back_to_the_queue(api: Api) -> None:
    alert_id = api.new_alert("p-1")
    api.post("wang", alert_id, "claim")
    released = api.post("boss", alert_id, "release").json()
    assert (released["status"], released["claimed_by"], released["claimed_at"]) == (
        "new",
        None,
        None,
    )
    assert released["timeline"][-1]["detail"] == {"holder": "wang", "from": "claimed"}
    assert api.post("li", alert_id, "claim").json()["claimed_by"] == "li"
    # Claimed again: the device hears so again; claiming one's own alert again tells nothing.
    assert api.post("li", alert_id, "claim").status_code == 200
    assert [a.status for _, a in api.downlink.sent] == [AckStatus.CLAIMED, AckStatus.CLAIMED]


def test_without_a_downlink_the_action_stands_and_the_timeline_says_so(
    sessions: sessionmaker[Session],
) -> None:
    with running_api(sessions, None) as api:
        alert_id = api.new_alert("p-1")
        assert api.post("wang", alert_id, "claim").status_code == 200
        response = api.post("wang", alert_id, "acknowledge")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "acknowledged"
    assert [e["action"] for e in body["timeline"]] == [
        "created",
        "claimed",
        "device_not_told",
        "acknowledged",
        "device_not_told",
    ]
    assert body["timeline"][2]["detail"] == {
        "ack": "claimed",
        "reason": "no device downlink in this process",
    }
    assert [(e["action"], e["actor"], e["detail"]) for e in body["timeline"][-2:]] == [
        ("acknowledged", "wang", {"from": "claimed", "ack": "help_coming"}),
        (
            "device_not_told",
            "wang",
            {"ack": "help_coming", "reason": "no device downlink in this process"},
        ),
    ]


def test_a_downlink_that_fails_is_recorded_not_hidden(api: Api) -> None:
    alert_id = api.new_alert("p-1")
    api.post("wang", alert_id, "claim")
    api.downlink.fail = True
    response = api.post("wang", alert_id, "acknowledge")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "acknowledged"
    last = response.json()["timeline"][-1]
    assert (last["action"], last["detail"]) == (
        "device_not_told",
        {"ack": "help_coming", "reason": "sending failed: broker gone"},
    )


def test_the_mqtt_downlink_publishes_on_the_ack_topic() -> None:
    published: list[tuple[str, bytes, int]] = []
    downlink = MqttDownlink(lambda t, p, q: published.append((t, p, q)), "anxin/v1")
    downlink.send_ack(
        "p-017", AckPayload(alert_id=7, status=AckStatus.HELP_COMING, message="工作人员正在赶来")
    )
    assert published == [
        (
            "anxin/v1/p-017/ack",
            '{"alert_id":7,"status":"help_coming","message":"工作人员正在赶来"}'.encode(),
            1,
        )
    ]


def test_the_mqtt_downlink_publishes_commands_and_refuses_while_disconnected() -> None:
    published: list[tuple[str, bytes, int]] = []
    up = [True]
    downlink = MqttDownlink(lambda t, p, q: published.append((t, p, q)), "anxin/v1", lambda: up[0])
    downlink.send_command("p-017", CommandPayload(command="locate", id="c1"))
    assert published == [("anxin/v1/p-017/cmd", b'{"command":"locate","params":{},"id":"c1"}', 1)]
    up[0] = False
    with pytest.raises(DownlinkUnavailableError):
        downlink.send_ack("p-017", AckPayload(alert_id=7, status=AckStatus.CLAIMED))
    assert len(published) == 1


def test_the_actions_are_documented_in_openapi(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = spec["paths"]
    for action in ("claim", "release", "acknowledge", "notes", "escalate", "resolve"):
        operation = paths[f"/api/v1/alerts/{{alert_id}}/{action}"]["post"]
        assert {"200", "403", "404", "422"} <= set(operation["responses"]), action
    assert "409" in paths["/api/v1/alerts/{alert_id}/claim"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    for model in ("NoteIn", "EscalateIn", "ResolveIn"):
        assert schemas[model]["examples"], model
    outcomes = schemas["Outcome"]["enum"]
    assert set(outcomes) == {o.value for o in Outcome}


def test_every_timeline_row_is_in_the_database(api: Api) -> None:
    alert_id = api.new_alert("p-1")
    for action, body in (("claim", None), ("acknowledge", None), ("notes", {"text": "好"})):
        api.post("wang", alert_id, action, body)
    with api.sessions() as session:
        rows = session.execute(
            select(AlertRow.status, AlertRow.updated_at).where(AlertRow.id == alert_id)
        ).one()
        timeline = get_timeline(session, alert_id)
    assert rows.status == "acknowledged"
    assert rows.updated_at == timeline[-1].at == api.clock.at
