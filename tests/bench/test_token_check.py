"""Measured, not asserted: what the disabled-user check adds to every authenticated request.

Run with `pytest -m bench -s tests/bench/test_token_check.py`. Side by side in one run, on a
real SQLite file and a real PostgreSQL: a request to `GET /api/v1/devices?limit=1` through the
app with the token check as shipped (signature + one indexed read of the user's active flag and
token version), against the same app with the read taken out (signature only, as before).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from anxin.database import open_database, upgrade
from api import deps
from api.app import create_app
from api.tokens import Principal
from api.users import Role
from tests.support.api_world import add_users, api_context
from tests.support.postgres import running_postgres

ROUNDS = 5
REQUESTS = 300


def _per_request_ms(client: TestClient, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS):
        assert client.get("/api/v1/devices?limit=1", headers=headers).status_code == 200
    return (time.perf_counter() - started) / REQUESTS * 1000


def _measure(sessions: sessionmaker[Session], label: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with sessions.begin() as session:
        add_users(session)
    context = api_context(sessions)
    token = context.tokens.issue(
        Principal(username="admin", role=Role.ADMIN, scope=""),
        context.clock(),
    )
    headers = {"Authorization": f"Bearer {token}"}
    shipped: Callable[..., object] = deps.token_state
    with TestClient(create_app(context)) as client:
        _per_request_ms(client, headers)  # warm-up
        checked, unchecked = [], []
        for _ in range(ROUNDS):
            monkeypatch.setattr(deps, "token_state", shipped)
            checked.append(_per_request_ms(client, headers))
            monkeypatch.setattr(deps, "token_state", lambda _s, _u: (True, 0))
            unchecked.append(_per_request_ms(client, headers))
    c, u = statistics.median(checked), statistics.median(unchecked)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\n{label}: with the check {c:.3f} ms/request, without {u:.3f} ms/request, "
        f"ratio {c / u:.3f} (median of {ROUNDS}×{REQUESTS}; loadavg {' '.join(loadavg)})"
    )


@pytest.mark.bench
def test_token_check_cost_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'anxin.db'}")
    upgrade(engine)
    _measure(sessions, "sqlite", monkeypatch)


@pytest.mark.bench
def test_token_check_cost_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_postgres() as server, server.fresh_database() as url:
        engine, sessions = open_database(url)
        upgrade(engine)
        _measure(sessions, "postgresql", monkeypatch)
        engine.dispose()
