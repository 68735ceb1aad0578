"""What only PostgreSQL can show: concurrent writers, and the whole SOS path on it.

The tests shared with SQLite (store, pipeline, API) run on PostgreSQL through the ``sessions``
fixture; these need PostgreSQL itself: two transactions at once, and ``anxin serve`` on it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from alerting.decisions import RaiseAlert
from alerting.engine import RulesEngine
from alerting.model import ALERT_KINDS, AlertType
from alerting.store import AlertChange, AlertRow, ChangeKind, get_timeline, raise_or_coalesce
from anxin.database import open_database, upgrade
from devices.codec import NativeCodec
from devices.registry import register_device
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import delivery as mqtt_delivery
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

T = TypeVar("T")
T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
# Every wait on the other thread is bounded: a lost wake-up fails the test, it never hangs.
WITHIN_S = 20.0


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    refused_inserts: list[IntegrityError]


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Database]:
    """A fresh PostgreSQL database, migrated, whose IntegrityErrors are recorded."""
    engine, factory = open_database(postgres_url)
    upgrade(engine)
    refused: list[IntegrityError] = []

    def record(context: ExceptionContext) -> None:
        if isinstance(context.sqlalchemy_exception, IntegrityError):
            refused.append(context.sqlalchemy_exception)

    event.listen(engine, "handle_error", record)
    yield Database(url=postgres_url, engine=engine, sessions=factory, refused_inserts=refused)
    engine.dispose()


def sos(device_id: str, seq: int | None = None) -> RaiseAlert:
    return RaiseAlert(
        device_id=device_id,
        elder_id=None,
        type=AlertType.SOS,
        category=ALERT_KINDS[AlertType.SOS].category,
        priority=ALERT_KINDS[AlertType.SOS].priority,
        occurred_at=T0,
        seq=seq,
    )


def in_threads(*work: Callable[[], T]) -> list[T]:
    """Run each callable on its own thread; their results, or the first exception raised."""
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(job) for job in work]
        return [future.result(timeout=WITHIN_S * 2) for future in futures]


def backend_waiting_on_a_lock(url: str, pid: int) -> bool | None:
    """True once the backend ``pid`` waits on a heavyweight lock (None until then)."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return True if row is not None and row[0] == "Lock" else None


def test_two_transactions_raising_the_same_sos_at_once_coalesce(postgres: Database) -> None:
    """The losing insert waits on the winner's uncommitted row, inserts nothing once the winner
    commits (ON CONFLICT on the partial unique index), and is counted on the winner's alert."""
    both_in_transaction = threading.Barrier(2, timeout=WITHIN_S)
    first_inserted = threading.Event()
    second_pid: list[int] = []

    def first() -> AlertChange:
        with postgres.sessions.begin() as session:
            session.execute(text("SELECT 1"))  # the transaction has begun on the server
            both_in_transaction.wait()
            change = raise_or_coalesce(session, sos("p1", seq=1), T0)
            first_inserted.set()
            # Commit only once the second transaction is blocked on our uncommitted row.
            wait_until(lambda: backend_waiting_on_a_lock(postgres.url, second_pid[0]), WITHIN_S)
        return change

    def second() -> AlertChange:
        with postgres.sessions.begin() as session:
            second_pid.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
            both_in_transaction.wait()
            assert first_inserted.wait(WITHIN_S)
            # Our snapshot cannot see the first insert: SELECT … FOR UPDATE finds nothing, the
            # INSERT waits for the first transaction, then ON CONFLICT inserts nothing.
            return raise_or_coalesce(session, sos("p1", seq=2), T0 + timedelta(seconds=1))

    opened, repeated = in_threads(first, second)

    assert opened.kind is ChangeKind.CREATED
    assert repeated.kind is ChangeKind.UPDATED
    assert repeated.alert_id == opened.alert_id
    # INSERT … ON CONFLICT DO NOTHING met the winner's row: no error, nothing inserted.
    assert postgres.refused_inserts == []
    with postgres.sessions() as session:
        (row,) = session.scalars(select(AlertRow)).all()
        timeline = [(e.action, e.actor) for e in get_timeline(session, row.id)]
    assert (row.id, row.count, row.last_seq) == (opened.alert_id, 2, 2)
    assert timeline == [("created", "device:p1"), ("coalesced", "device:p1")]


def test_many_transactions_at_once_make_one_alert_per_device(postgres: Database) -> None:
    """No interleaving imposed: eight writers race on each of three devices, in turn."""
    writers = 8

    def press(device_id: str, start: threading.Barrier, seq: int) -> int:
        with postgres.sessions.begin() as session:
            session.execute(text("SELECT 1"))
            start.wait()
            return raise_or_coalesce(session, sos(device_id, seq), T0).alert_id

    for device_id in ("p1", "p2", "p3"):
        start = threading.Barrier(writers, timeout=WITHIN_S)
        alert_ids = in_threads(*(partial(press, device_id, start, seq) for seq in range(writers)))
        assert len(set(alert_ids)) == 1, alert_ids
    with postgres.sessions() as session:
        rows = session.scalars(select(AlertRow).order_by(AlertRow.device_id)).all()
        timelines = [len(get_timeline(session, row.id)) for row in rows]
    assert [(r.device_id, r.count) for r in rows] == [("p1", 8), ("p2", 8), ("p3", 8)]
    assert timelines == [8, 8, 8]


def delivery(topic: str, payload: bytes) -> Delivery:
    return mqtt_delivery(topic, payload, T0)


def test_an_sos_with_a_seq_beyond_32_bits_is_stored_whole(postgres: Database) -> None:
    pipeline = IngestPipeline(
        sessions=postgres.sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=RulesEngine(),
        clock=lambda: T0,
    )
    pipeline.store(
        [delivery("anxin/v1/p1/sos", b'{"seq": 3000000000, "location": {"room": "kitchen"}}')]
    )
    with postgres.sessions() as session:
        (row,) = session.scalars(select(AlertRow)).all()
    assert "payload_error" not in row.attributes, row.attributes
    assert row.location == {"room": "kitchen"}


# The whole path: mosquitto_pub → Mosquitto → `anxin serve` → PostgreSQL → API and Ack.


def alert_of(setup: AnxinEnv, token: str, device_id: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{setup.api_url}/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return next((a for a in items if a["device_id"] == device_id), None)


def test_anxin_serve_on_postgresql_stores_lists_and_acknowledges_an_sos(
    mosquitto: Mosquitto, postgres_url: str, tmp_path: Path
) -> None:
    setup = anxin_env(
        tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url, ANXIN_DATABASE_URL=postgres_url
    )
    upgraded = setup.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    setup.add_user("dispatcher1", PASSWORD)
    engine, sessions = open_database(postgres_url)
    with sessions.begin() as session:
        register_device(session, "pendant-7", "sos-pendant")
    engine.dispose()

    with running_anxin(setup), listening(mosquitto.port, "anxin/v1/+/ack") as acks:
        token = setup.token("dispatcher1", PASSWORD)
        sos_payload = {"trigger": "button", "seq": 1, "location": {"room": "卧室"}, "fw": "1.2"}
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-7/sos", json.dumps(sos_payload))
        # Not JSON strictly speaking, but Python's and many devices' encoders write it.
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-8/sos", '{"x": NaN, "y": [Infinity]}')

        alert = wait_until(lambda: alert_of(setup, token, "pendant-7"))
        odd = wait_until(lambda: alert_of(setup, token, "pendant-8"))
        received = [acks.get(timeout=10) for _ in range(2)]

    assert (alert["type"], alert["priority"], alert["status"]) == ("sos", "critical", "new")
    assert alert["count"] == 1
    assert "unregistered_device" not in alert["attributes"]
    assert alert["location"] == {"room": "卧室"}
    assert alert["attributes"]["trigger"] == "button"
    assert alert["attributes"]["fw"] == "1.2"
    # Non-finite numbers in unknown fields are kept as text; PostgreSQL's JSON would refuse them.
    assert odd["attributes"]["x"] == "nan"
    assert odd["attributes"]["y"] == ["inf"]
    assert "payload_error" not in odd["attributes"]
    assert odd["attributes"]["unregistered_device"] is True
    ack_of = {m.topic: json.loads(m.payload) for m in received}
    assert ack_of["anxin/v1/pendant-7/ack"]["alert_id"] == alert["id"]
    assert ack_of["anxin/v1/pendant-7/ack"]["status"] == "received"
    assert ack_of["anxin/v1/pendant-8/ack"]["alert_id"] == odd["id"]
    # And it is PostgreSQL that holds them.
    with psycopg.connect(postgres_url) as connection:
        stored = connection.execute(
            "SELECT device_id, attributes::text FROM alerts ORDER BY device_id"
        ).fetchall()
    assert [device for device, _ in stored] == ["pendant-7", "pendant-8"]
    assert '"x": "nan"' in stored[1][1]
