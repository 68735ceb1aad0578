"""The alert stream over real processes: an SOS published over real MQTT to ``anxin ingest``
reaches a dispatcher streaming from a separate ``anxin api`` process; claims, resumption with
Last-Event-ID, keep-alives, scopes, the token in the query and the stream limit."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle
from anxin.database import open_database, upgrade
from api.streaming import StreamSettings, TimelineWatch
from api.tokens import Principal
from api.users import Role
from devices.registry import DeviceRow
from tests.support.api_world import (
    SECRET,
    Sse,
    add_registry,
    add_users,
    api_context,
    event_stream,
    raise_alert,
    serving,
)
from tests.support.mosquitto import Mosquitto, running_mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.postgres import PostgresServer
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@dataclass
class Deployment:
    ingest: AnxinEnv
    api: AnxinEnv
    mosquitto: Mosquitto

    @property
    def stream_url(self) -> str:
        return f"{self.api.api_url}/api/v1/alerts/stream"

    def token(self, user: str) -> str:
        return self.api.token(user, "a-good-password")

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def sos(self, device_id: str, payload: str = '{"trigger": "button"}') -> None:
        mosquitto_pub(self.mosquitto.port, f"anxin/v1/{device_id}/sos", payload)

    def act(self, user: str, alert_id: int, action: str, body: Any = None) -> Any:
        response = httpx.post(
            f"{self.api.api_url}/api/v1/alerts/{alert_id}/{action}",
            json=body,
            headers=self.headers(user),
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """``anxin ingest`` and ``anxin api``: two processes on one SQLite database, for the whole
    module (starting them is the slow part). Each test raises alerts on devices of its own."""
    folder = tmp_path_factory.mktemp("stream")
    (folder / "mosquitto").mkdir()
    with running_mosquitto(folder / "mosquitto") as mosquitto:
        common = {
            "ANXIN_MQTT_URL": mosquitto.url,
            "ANXIN_SECRET_KEY": SECRET,
            "ANXIN_SSE_KEEPALIVE_S": "0.5",
            "ANXIN_SSE_MAX_STREAMS": "3",
            "ANXIN_SSE_BACKLOG": "4",
            "ANXIN_SSE_POLL_S": "0.1",
        }
        ingest = anxin_env(folder / "anxin", **common)
        # Its own broker connection tells devices; a device not told would be one more event.
        api = anxin_env(folder / "anxin", ANXIN_MQTT_DOWNLINK_URL=mosquitto.url, **common)
        engine, sessions = open_database(ingest.env["ANXIN_DATABASE_URL"])
        upgrade(engine)
        with sessions.begin() as session:
            add_users(session)
            registry = add_registry(session)
            for n in range(1, 10):
                session.add(
                    DeviceRow(id=f"p-zhang-{n}", model="sos-pendant", elder_id=registry.zhang)
                )
                session.add(
                    DeviceRow(id=f"p-zhao-{n}", model="sos-pendant", elder_id=registry.zhao)
                )
        engine.dispose()
        with running_anxin(ingest, command="ingest"), running_anxin(api, command="api"):
            yield Deployment(ingest, api, mosquitto)


def test_a_dispatcher_sees_an_sos_arrive_and_its_claim(deployment: Deployment) -> None:
    with event_stream(deployment.stream_url, deployment.headers("dispatcher")) as stream:
        published = time.monotonic()
        deployment.sos("p-zhang-1")
        created = stream.next()
        # Broker → ingest → database → the other process's poll → the stream.
        print(f"SOS to the stream of another process: {time.monotonic() - published:.3f} s")
        body = created.json()
        alert_id = body["alert"]["id"]
        deployment.act("zhangbei_dispatcher", alert_id, "claim")
        updated = stream.next()

    assert created.event == "alert.created"
    assert (body["alert"]["device_id"], body["alert"]["type"], body["alert"]["status"]) == (
        "p-zhang-1",
        "sos",
        "new",
    )
    assert body["event"]["action"] == body["event"]["kind"] == "created"
    assert body["event"]["actor"] == "device:p-zhang-1"
    assert created.id == str(body["event"]["id"])
    assert updated.event == "alert.updated"
    assert int(updated.id or 0) > int(created.id or 0)
    claim = updated.json()
    assert (claim["alert"]["status"], claim["alert"]["claimed_by"]) == (
        "claimed",
        "zhangbei_dispatcher",
    )
    assert (claim["event"]["action"], claim["event"]["actor"]) == ("claimed", "zhangbei_dispatcher")
    # The alert object is the queue's.
    queue = httpx.get(
        f"{deployment.api.api_url}/api/v1/alerts", headers=deployment.headers("dispatcher")
    ).json()["items"]
    assert next(a for a in queue if a["id"] == alert_id) == claim["alert"]


def test_a_repeat_counted_on_an_open_alert_is_an_update(deployment: Deployment) -> None:
    with event_stream(deployment.stream_url, deployment.headers("dispatcher")) as stream:
        deployment.sos("p-zhang-2")
        first = stream.next()
        deployment.sos("p-zhang-2")
        again = stream.next()
    assert (first.event, again.event) == ("alert.created", "alert.updated")
    assert again.json()["event"]["action"] == "coalesced"
    assert again.json()["alert"]["count"] == 2


def test_resuming_with_last_event_id_gives_exactly_the_missed_events(
    deployment: Deployment,
) -> None:
    with event_stream(deployment.stream_url, deployment.headers("dispatcher")) as stream:
        deployment.sos("p-zhang-3")
        seen = stream.next()
    alert_id = seen.json()["alert"]["id"]
    # Disconnected: these happen meanwhile.
    deployment.act("dispatcher", alert_id, "claim")
    deployment.act("dispatcher", alert_id, "notes", {"text": "已电话联系"})
    headers = {**deployment.headers("dispatcher"), "Last-Event-ID": seen.id or ""}
    with event_stream(deployment.stream_url, headers) as resumed:
        missed = [resumed.next(), resumed.next()]
        assert resumed.nothing_more(within_s=1.0)

    assert [(e.event, e.json()["event"]["action"]) for e in missed] == [
        ("alert.updated", "claimed"),
        ("alert.updated", "note"),
    ]
    assert int(missed[0].id or 0) > int(seen.id or 0)
    # The later state of the alert, as it is now.
    assert missed[0].json()["alert"]["status"] == "claimed"


def test_too_far_behind_a_resync_and_the_newest_events_only(deployment: Deployment) -> None:
    with event_stream(deployment.stream_url, deployment.headers("dispatcher")) as stream:
        deployment.sos("p-zhang-4")
        seen = stream.next()
    alert_id = seen.json()["alert"]["id"]
    for n in range(6):
        deployment.act("dispatcher", alert_id, "notes", {"text": f"note {n}"})
    headers = {**deployment.headers("dispatcher"), "Last-Event-ID": seen.id or ""}
    with event_stream(deployment.stream_url, headers) as resumed:
        resync = resumed.next()
        replayed = [resumed.next() for _ in range(4)]  # ANXIN_SSE_BACKLOG=4
        assert resumed.nothing_more(within_s=1.0)
    assert resync.event == "alerts.resync"
    assert [e.json()["event"]["detail"]["text"] for e in replayed] == [
        f"note {n}" for n in range(2, 6)
    ]
    assert resync.json() == {"skipped_after": int(replayed[0].id or 0) - 1}


def test_keep_alive_comments_keep_an_idle_stream_open(deployment: Deployment) -> None:
    with event_stream(deployment.stream_url, deployment.headers("dispatcher")) as stream:
        comments = [stream.next(comments=True) for _ in range(2)]  # ANXIN_SSE_KEEPALIVE_S=0.5
    assert comments == [Sse(event="comment", data="keep-alive")] * 2


def test_a_district_dispatcher_sees_only_their_district(deployment: Deployment) -> None:
    with (
        event_stream(deployment.stream_url, deployment.headers("chongli_dispatcher")) as chongli,
        event_stream(deployment.stream_url, deployment.headers("zhangbei_dispatcher")) as zhangbei,
    ):
        deployment.sos("p-zhang-5")  # 张北县
        deployment.sos("unregistered-1")  # no elder: only unscoped users
        deployment.sos("p-zhao-5")  # 崇礼区
        theirs = chongli.next()
        ours = zhangbei.next()
        assert zhangbei.nothing_more(within_s=1.5)
        assert chongli.nothing_more(within_s=0.1)
    assert theirs.json()["alert"]["device_id"] == "p-zhao-5"
    assert ours.json()["alert"]["device_id"] == "p-zhang-5"


def test_the_token_in_the_query_and_the_limits(deployment: Deployment) -> None:
    url = deployment.stream_url
    token = deployment.token("engineer")
    metrics_url = f"{deployment.api.api_url}/metrics"
    # The streams of earlier tests are closed, and the server has noticed.
    wait_until(lambda: "anxin_sse_streams 0.0" in httpx.get(metrics_url).text or None)
    with event_stream(url, params={"access_token": token}) as engineer:
        deployment.sos("p-zhang-6", '{"location": {"room": "卧室"}}')
        seen = engineer.next().json()
        # The query token is for the stream only.
        elsewhere = httpx.get(
            f"{deployment.api.api_url}/api/v1/alerts", params={"access_token": token}
        )
        refused = httpx.get(url, params={"access_token": "nonsense"})
        anonymous = httpx.get(url)
        with (
            event_stream(url, params={"access_token": token}),
            event_stream(url, params={"access_token": token}),
        ):
            busy = httpx.get(url, params={"access_token": token})  # ANXIN_SSE_MAX_STREAMS=3
        metrics = httpx.get(metrics_url).text
    assert seen["alert"]["location"] is None  # engineers do not see where the elder lives
    assert elsewhere.status_code == 401
    assert (refused.status_code, refused.json()) == (401, {"detail": "invalid or expired token"})
    assert (anonymous.status_code, anonymous.json()) == (401, {"detail": "not authenticated"})
    assert (busy.status_code, busy.json()) == (
        503,
        {"detail": "too many alert streams open (at most 3)"},
    )
    assert "anxin_sse_streams_refused_total 1.0" in metrics


def test_a_last_event_id_that_is_no_position_is_refused(deployment: Deployment) -> None:
    headers = deployment.headers("dispatcher")
    bad_header = httpx.get(deployment.stream_url, headers={**headers, "Last-Event-ID": "12~x"})
    bad_query = httpx.get(deployment.stream_url, headers=headers, params={"last_event_id": "-1"})
    assert bad_header.status_code == 422
    assert bad_header.json() == {"detail": "not a stream position: '12~x'"}
    assert bad_query.status_code == 422


def test_the_api_stops_promptly_with_a_stream_open(tmp_path: Path) -> None:
    """An open stream must not hold ``anxin api`` up when it is told to stop."""
    setup = anxin_env(tmp_path / "anxin", ANXIN_SECRET_KEY=SECRET)
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        add_users(session)
    engine.dispose()
    with running_anxin(setup, command="api") as process:
        headers = {"Authorization": f"Bearer {setup.token('dispatcher', 'a-good-password')}"}
        with event_stream(f"{setup.api_url}/api/v1/alerts/stream", headers) as stream:
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            status = process.wait(timeout=15)
            took = time.monotonic() - started
            with pytest.raises(EOFError):
                stream.next(within_s=5)
    assert status == 0
    print(f"stopped in {took:.2f} s with a stream open")
    assert took < 4.5  # not held up to uvicorn's 5 s graceful-shutdown bound


def _two_alerts(postgres_url: str) -> tuple[Engine, sessionmaker[Session], int, int]:
    """A migrated PostgreSQL database with the users and two open alerts, one per elder."""
    engine, sessions = open_database(postgres_url)
    upgrade(engine)
    with sessions.begin() as session:
        add_users(session)
        registry = add_registry(session)
        slow_alert = raise_alert(session, "p-zhang", registry.zhang, T0)
        fast_alert = raise_alert(session, "p-zhao", registry.zhao, T0)
    return engine, sessions, slow_alert, fast_alert


def test_a_change_committed_late_still_reaches_the_stream(postgres_url: str) -> None:
    """On PostgreSQL a timeline row's id is taken at insert and seen at commit: a transaction
    that took id N and commits after the one that took N + 1 must not be skipped."""
    engine, sessions, slow_alert, fast_alert = _two_alerts(postgres_url)
    context = api_context(sessions, streams=TimelineWatch(StreamSettings(poll_s=0.1)))
    principal = Principal(username="dispatcher", role=Role.DISPATCHER, scope="")
    headers = {"Authorization": f"Bearer {context.tokens.issue(principal, datetime.now(UTC))}"}
    try:
        with (
            serving(context) as url,
            event_stream(f"{url}/api/v1/alerts/stream", headers) as stream,
            sessions() as slow,
        ):
            lifecycle.add_note(slow, slow_alert, actor="slow", now=T0, text="first")
            slow.flush()  # its id is taken, the row not yet visible
            with sessions.begin() as fast:
                lifecycle.add_note(fast, fast_alert, actor="fast", now=T0, text="second")
            second = stream.next()
            slow.commit()
            first = stream.next()
    finally:
        engine.dispose()
    assert [e.json()["event"]["detail"]["text"] for e in (second, first)] == ["second", "first"]
    first_id, second_id = (e.json()["event"]["id"] for e in (first, second))
    assert first_id < second_id
    # The ids are positions: "second, still waiting for first", then "second, nothing missing".
    assert (second.id, first.id) == (f"{second_id}~{first_id}", str(second_id))


def test_a_fresh_stream_has_what_commits_once_it_is_open(postgres_url: str) -> None:
    """Opened without Last-Event-ID, a stream starts where the 200 went out: a change committed
    right after it is on the stream, and so is one whose transaction was still in flight when it
    opened (it took a lower id than the newest row)."""
    engine, sessions, slow_alert, fast_alert = _two_alerts(postgres_url)
    context = api_context(sessions, streams=TimelineWatch(StreamSettings(poll_s=0.1)))
    principal = Principal(username="dispatcher", role=Role.DISPATCHER, scope="")
    headers = {"Authorization": f"Bearer {context.tokens.issue(principal, datetime.now(UTC))}"}
    try:
        with serving(context) as url, sessions() as slow:
            lifecycle.add_note(slow, slow_alert, actor="slow", now=T0, text="in flight")
            slow.flush()  # its id is taken, the row not yet visible
            with sessions.begin() as fast:
                lifecycle.add_note(fast, fast_alert, actor="fast", now=T0, text="before")
            with event_stream(f"{url}/api/v1/alerts/stream", headers) as stream:
                with sessions.begin() as right_after:
                    lifecycle.add_note(right_after, fast_alert, actor="x", now=T0, text="after")
                after = stream.next()
                slow.commit()
                in_flight = stream.next()
    finally:
        engine.dispose()
    texts = [e.json()["event"]["detail"]["text"] for e in (after, in_flight)]
    assert texts == ["after", "in flight"]


def test_in_one_process_the_change_feed_wakes_the_stream(tmp_path: Path) -> None:
    """``anxin serve``: ingest tells the stream at once, without waiting for the poll (30 s)."""
    folder = tmp_path / "serve"
    (folder / "mosquitto").mkdir(parents=True)
    with running_mosquitto(folder / "mosquitto") as mosquitto:
        setup = anxin_env(
            folder / "anxin",
            ANXIN_MQTT_URL=mosquitto.url,
            ANXIN_SECRET_KEY=SECRET,
            ANXIN_SSE_POLL_S="30",
            ANXIN_SSE_KEEPALIVE_S="0.3",
        )
        engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
        upgrade(engine)
        with sessions.begin() as session:
            add_users(session)
            add_registry(session)
        engine.dispose()
        with running_anxin(setup, command="serve"):
            headers = {"Authorization": f"Bearer {setup.token('dispatcher', 'a-good-password')}"}
            url = f"{setup.api_url}/api/v1/alerts/stream"
            with event_stream(url, headers) as stream:
                # After a keep-alive the watch's first read is done: only the feed can wake it.
                assert stream.next(comments=True).event == "comment"
                published = time.monotonic()
                mosquitto_pub(mosquitto.port, "anxin/v1/p-zhang/sos", "{}")
                created = stream.next(within_s=10)
                took = time.monotonic() - published
    print(f"SOS to the stream in the same process: {took:.3f} s")
    assert created.event == "alert.created"
    assert took < 5.0


def test_a_stream_outlives_a_database_outage(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The database refuses every connection for a while: open streams stay open (keep-alives
    go on), and the first change after it is back still arrives."""
    database = postgres_url.rsplit("/", 1)[-1]
    engine, sessions = open_database(postgres_url)
    upgrade(engine)
    with sessions.begin() as session:
        add_users(session)
        registry = add_registry(session)
        alert_id = raise_alert(session, "p-zhang", registry.zhang, T0)
    context = api_context(
        sessions, streams=TimelineWatch(StreamSettings(poll_s=0.1, keepalive_s=0.2))
    )
    principal = Principal(username="dispatcher", role=Role.DISPATCHER, scope="")
    headers = {"Authorization": f"Bearer {context.tokens.issue(principal, datetime.now(UTC))}"}

    def connections(allowed: bool) -> None:
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(database), sql.Literal(allowed)
                )
            )
            if not allowed:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (database,),
                )

    try:
        with (
            serving(context) as url,
            event_stream(f"{url}/api/v1/alerts/stream", headers) as stream,
        ):
            # After a keep-alive the stream has read and waits on the watch: only the watch,
            # which must survive the outage, can wake it.
            assert stream.next(comments=True).event == "comment"
            connections(allowed=False)
            # Several polls fail meanwhile (one every 0.1 s); the stream is still there.
            for _ in range(5):
                assert stream.next(comments=True).event == "comment"
            connections(allowed=True)
            with sessions.begin() as session:
                lifecycle.add_note(session, alert_id, actor="wang", now=T0, text="back")
            after = stream.next(within_s=15)
    finally:
        connections(allowed=True)
        engine.dispose()
    assert after.json()["event"]["detail"] == {"text": "back"}
