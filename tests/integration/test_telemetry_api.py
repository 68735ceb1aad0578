"""Telemetry end to end on real databases: the pipeline stores a batch, its points go through
the writer to a real influxd, and ``GET /api/v1/devices/{id}/telemetry`` reads them back
within the user's scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.feed import AlertFeed
from api.app import create_app
from api.deps import ApiContext
from api.tokens import TokenService
from api.users import Role, UserRow, hash_password
from devices.codec import NativeCodec
from devices.elders import ElderRow
from devices.registry import register_device
from ingest.decoding import MessageDecoder
from ingest.pipeline import IngestPipeline
from ingest.telemetry.sink_v1 import InfluxV1
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import TelemetryWriter
from tests.support.influx import InfluxServer
from tests.support.mqtt import delivery as mqtt_delivery

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
PASSWORD = "a-good-password"
HASH = hash_password(PASSWORD)
USERS = {
    "zhangbei_dispatcher": (Role.DISPATCHER, "张家口市/张北县"),
    "chongli_dispatcher": (Role.DISPATCHER, "张家口市/崇礼区"),
    "engineer": (Role.ENGINEER, ""),
    "supervisor": (Role.SUPERVISOR, ""),
    "admin": (Role.ADMIN, ""),
}


_delivery = mqtt_delivery


@pytest.fixture
def stored(
    sessions: sessionmaker[Session], influxd: InfluxServer, influx_database: str, tmp_path: Path
) -> InfluxV1:
    """A device of an elder in 张北县 sends heartbeats and telemetry; the pipeline stores them
    and hands the points to a writer on a real influxd."""
    with sessions.begin() as session:
        session.add(ElderRow(id=1, name="张秀英", community="张家口市/张北县/花园街道/幸福社区"))
        session.flush()
        register_device(session, "w-1", "4g-elder-phone", elder_id=1)
        for name, (role, scope) in USERS.items():
            session.add(UserRow(username=name, password_hash=HASH, role=role.value, scope=scope))
    pipeline = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=RulesEngine(),
        clock=lambda: NOW,
    )
    t = [NOW - timedelta(minutes=m) for m in (30, 20, 10)]
    result = pipeline.store_batch(
        [
            _delivery("anxin/v1/w-1/heartbeat", '{"battery": 81, "rssi": -70}', t[0]),
            _delivery(
                "anxin/v1/w-1/telemetry",
                '{"metrics": {"heart_rate": 72, "体温 c": 36.6}, "battery": 80}',
                t[1],
            ),
            _delivery("anxin/v1/w-1/telemetry", '{"metrics": {"heart_rate": 75.5}}', t[2]),
            _delivery("anxin/v1/nobody/heartbeat", '{"battery": 50}', t[2]),  # not registered
            _delivery("anxin/v1/w-1/telemetry", '{"metrics": "bad"}', t[2]),  # dead letter
        ]
    )
    assert len(result.points) == 3
    store = InfluxV1(influxd.url, influx_database)
    writer = TelemetryWriter(InfluxV1(influxd.url, influx_database), Spool(tmp_path, 1 << 20))
    writer.submit(result.points)
    writer.stop()  # writes what is buffered
    return store


@pytest.fixture
def client(sessions: sessionmaker[Session], stored: InfluxV1) -> Iterator[TestClient]:
    context = ApiContext(
        sessions=sessions,
        tokens=TokenService("k" * 40),
        feed=AlertFeed(),
        clock=lambda: NOW,
        telemetry=stored,
    )
    with TestClient(create_app(context)) as test_client:
        yield test_client


def _get(client: TestClient, user: str, path: str, **params: str) -> tuple[int, object]:
    token = client.post("/api/v1/auth/token", data={"username": user, "password": PASSWORD}).json()[
        "access_token"
    ]
    response = client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def test_points_of_stored_messages_are_served(client: TestClient) -> None:
    status, body = _get(client, "zhangbei_dispatcher", "/api/v1/devices/w-1/telemetry")
    assert status == 200
    assert isinstance(body, dict)
    assert body["device_id"] == "w-1"
    assert body["end"] == NOW.isoformat().replace("+00:00", "Z")
    got = [(p["metric"], p["value"]) for p in body["points"]]
    assert got == [
        ("battery", 81.0),
        ("rssi", -70.0),
        ("battery", 80.0),
        ("heart_rate", 72.0),
        ("体温 c", 36.6),
        ("heart_rate", 75.5),
    ]
    status, body = _get(
        client, "engineer", "/api/v1/devices/w-1/telemetry", metric="heart_rate", start="-15m"
    )
    assert status == 200
    assert isinstance(body, dict)
    assert [(p["metric"], p["value"]) for p in body["points"]] == [("heart_rate", 75.5)]
    start = (NOW - timedelta(minutes=25)).isoformat()
    end = (NOW - timedelta(minutes=15)).isoformat()
    status, body = _get(
        client, "supervisor", "/api/v1/devices/w-1/telemetry", start=start, end=end, metric="体温 c"
    )
    assert isinstance(body, dict)
    assert [(p["metric"], p["value"]) for p in body["points"]] == [("体温 c", 36.6)]


def test_scope_and_bad_input(client: TestClient) -> None:
    path = "/api/v1/devices/w-1/telemetry"
    assert _get(client, "chongli_dispatcher", path)[0] == 404
    assert _get(client, "admin", "/api/v1/devices/nobody/telemetry")[0] == 404
    status, body = _get(client, "admin", path, start="yesterday")
    assert status == 422
    assert "start: 'yesterday' is not now" in str(body)
    assert _get(client, "admin", path, start="2026-01-01T00:00:00")[0] == 422  # no offset
    assert _get(client, "admin", path, start="-1h", end="-2h")[0] == 422
    assert _get(client, "admin", path, limit="0")[0] == 422


def test_no_telemetry_store_is_503(sessions: sessionmaker[Session], stored: InfluxV1) -> None:
    context = ApiContext(
        sessions=sessions, tokens=TokenService("k" * 40), feed=AlertFeed(), clock=lambda: NOW
    )
    with TestClient(create_app(context)) as client:
        status, body = _get(client, "admin", "/api/v1/devices/w-1/telemetry")
    assert status == 503
    assert body == {"detail": "no telemetry store is configured (ANXIN_INFLUX_URL is not set)"}


def test_store_away_is_503(sessions: sessionmaker[Session], stored: InfluxV1) -> None:
    context = ApiContext(
        sessions=sessions,
        tokens=TokenService("k" * 40),
        feed=AlertFeed(),
        clock=lambda: NOW,
        telemetry=InfluxV1("http://127.0.0.1:9", "anxin", timeout_s=1),
    )
    with TestClient(create_app(context)) as client:
        status, body = _get(client, "admin", "/api/v1/devices/w-1/telemetry")
    assert status == 503
    assert "the telemetry store failed" in str(body)


def test_no_points_without_a_telemetry_store(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        register_device(session, "w-2", "4g-elder-phone")
    pipeline = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=RulesEngine(),
        clock=lambda: NOW,
        telemetry_points=False,
    )
    result = pipeline.store_batch([_delivery("anxin/v1/w-2/heartbeat", '{"battery": 9}', NOW)])
    assert result.points == []
    assert [c.type for c in result.changes] == ["low_battery"]  # the rest as ever


def test_an_alert_shows_the_devices_telemetry_around_it(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    from alerting.decisions import RaiseAlert
    from alerting.model import AlertType, Category, Priority
    from alerting.store import raise_or_coalesce

    with sessions.begin() as session:
        change = raise_or_coalesce(
            session,
            RaiseAlert(
                device_id="w-1",
                elder_id=1,
                type=AlertType.SOS,
                category=Category.EMERGENCY,
                priority=Priority.CRITICAL,
                occurred_at=NOW,
            ),
            NOW,
        )
    path = f"/api/v1/alerts/{change.alert_id}"
    status, body = _get(client, "zhangbei_dispatcher", path)
    assert status == 200
    assert isinstance(body, dict)
    assert [(p["metric"], p["value"]) for p in body["telemetry"]] == [
        ("battery", 81.0),
        ("rssi", -70.0),
        ("battery", 80.0),
        ("heart_rate", 72.0),
        ("体温 c", 36.6),
        ("heart_rate", 75.5),
    ]
