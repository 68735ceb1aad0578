"""The HTTP API in-process (FastAPI's TestClient) on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from alerting.decisions import RaiseAlert
from alerting.feed import AlertFeed
from alerting.model import AlertType, Category, Priority
from alerting.store import raise_or_coalesce
from api.app import create_app
from api.deps import ApiContext
from api.tokens import TokenService
from api.users import Role, save_user
from ingest import metrics as ingest_metrics

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


@pytest.fixture
def client(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with sessions.begin() as session:
        save_user(session, "wang", "dispatch-pass", Role.DISPATCHER)
    context = ApiContext(
        sessions=sessions,
        tokens=TokenService("k" * 40),
        feed=AlertFeed(),
        clock=lambda: datetime.now(UTC),
        readiness={"database": lambda: True, "broker": lambda: False},
    )
    with TestClient(create_app(context)) as test_client:
        yield test_client


def login(client: TestClient, password: str = "dispatch-pass") -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": "wang", "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


def test_the_queue_needs_a_token(client: TestClient) -> None:
    response = client.get("/api/v1/alerts")
    assert response.status_code == 401
    assert response.json() == {"detail": "not authenticated"}
    bad = client.get("/api/v1/alerts", headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401


def test_a_wrong_password_gets_401(client: TestClient) -> None:
    response = client.post("/api/v1/auth/token", data={"username": "wang", "password": "nope"})
    assert response.status_code == 401
    unknown = client.post("/api/v1/auth/token", data={"username": "li", "password": "whatever"})
    assert unknown.status_code == 401


def test_alerts_are_listed_and_read_with_their_timeline(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        change = raise_or_coalesce(
            session,
            RaiseAlert(
                device_id="p1",
                elder_id=None,
                type=AlertType.SOS,
                category=Category.EMERGENCY,
                priority=Priority.CRITICAL,
                occurred_at=NOW,
                location={"room": "卧室"},
            ),
            NOW,
        )
    headers = login(client)
    page = client.get("/api/v1/alerts", headers=headers).json()
    assert [a["id"] for a in page["items"]] == [change.alert_id]
    assert page["items"][0]["location"] == {"room": "卧室"}
    detail = client.get(f"/api/v1/alerts/{change.alert_id}", headers=headers).json()
    assert [t["action"] for t in detail["timeline"]] == ["created"]
    assert detail["timeline"][0]["actor"] == "device:p1"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/alerts/999", 404),
        ("/api/v1/alerts/abc", 422),
        ("/api/v1/alerts?cursor=garbage", 400),
        ("/api/v1/alerts?limit=0", 422),
        ("/api/v1/alerts?priority=urgent", 422),
        ("/api/v1/alerts?status=lost", 422),
    ],
)
def test_bad_requests_get_clear_errors(client: TestClient, path: str, status: int) -> None:
    response = client.get(path, headers=login(client))
    assert response.status_code == status
    assert "detail" in response.json()


def test_health_readiness_and_metrics_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503  # the broker check says no
    assert ready.json()["checks"] == {"database": True, "broker": False}
    ingest_metrics.MESSAGES.labels("sos")  # the process registry is what /metrics serves
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'anxin_messages_total{kind="sos"}' in metrics.text
