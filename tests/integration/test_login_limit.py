"""Failed logins through the API: limited per user and per address (429 with Retry-After),
counted in /metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from anxin.database import open_database, upgrade
from tests.support.api_world import PASSWORD, api_world


def failures(metrics: str, reason: str) -> float:
    found = re.search(rf'^anxin_login_failures_total{{reason="{reason}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_guessed_password_is_held_after_five_failures_and_counted(tmp_path: Path) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'anxin.db'}")
    upgrade(engine)
    now = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    with api_world(sessions, clock=lambda: now[0]) as world:
        client = world.client
        before = client.get("/metrics").text
        login = {"username": "dispatcher", "password": "wrong"}
        statuses = [client.post("/api/v1/auth/token", data=login).status_code for _ in range(5)]
        assert statuses == [401] * 5
        # The sixth try is held, even with the right password, and says for how long.
        held = client.post(
            "/api/v1/auth/token", data={"username": "dispatcher", "password": PASSWORD}
        )
        assert held.status_code == 429
        assert held.headers["Retry-After"] == "300"
        assert held.json()["detail"] == "too many failed logins: try again in 300 s"
        # Another user is not held; five minutes later the first may try again.
        other = client.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        assert other.status_code == 200
        now[0] += timedelta(minutes=5)
        again = client.post(
            "/api/v1/auth/token", data={"username": "dispatcher", "password": PASSWORD}
        )
        assert again.status_code == 200
        after = client.get("/metrics").text
    engine.dispose()
    assert failures(after, "bad_credentials") - failures(before, "bad_credentials") == 5
    assert failures(after, "rate_limited") - failures(before, "rate_limited") == 1
