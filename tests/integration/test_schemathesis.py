"""schemathesis against the API on a real server: every check, every phase (examples, coverage,
fuzzing, and the stateful phase, which follows OpenAPI's links from lists and creations to the
operations on real alerts, elders and devices), as an admin. 0 failures.

Bounded: at most ``MAX_EXAMPLES`` cases an operation and ``MAX_TIME`` seconds in all, with a
fixed seed (the same cases every run; ``ANXIN_SCHEMATHESIS_SEED`` picks others). The closing
line is printed. What schemathesis cannot check, our own tests do: the cross-district (BOLA)
and role tests (tests/integration/test_roles.py, test_role_matrix.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from alerting import visit_store
from alerting.model import AlertType
from alerting.visits import VisitReason
from anxin.database import open_database, upgrade
from api.tokens import Principal, TokenService
from api.users import Role
from tests.support.api_world import (
    SECRET,
    add_registry,
    add_users,
    api_context,
    raise_alert,
    serving,
)

CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")
MAX_EXAMPLES = 15
MAX_TIME = 60
SEED = os.environ.get("ANXIN_SCHEMATHESIS_SEED", "12349")


def world(sessions: sessionmaker[Session]) -> None:
    """Users, two elders in two districts, and open alerts of several kinds to act on."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        add_users(session)
        registry = add_registry(session)
        kinds = (AlertType.SOS, AlertType.FALL, AlertType.SMOKE, AlertType.LOW_BATTERY)
        for number in range(40):
            device, elder = (
                (registry.zhang_device, registry.zhang)
                if number % 2
                else (registry.zhao_device, registry.zhao)
            )
            raise_alert(session, device, elder, now - timedelta(minutes=number), kinds[number % 4])
        for number in range(10):  # visits to act on (ids 1 to 10)
            visit_store.request_visit(
                session,
                elder_id=registry.zhang if number % 2 else registry.zhao,
                reason=VisitReason.MANUAL,
                due_at=now + timedelta(hours=number),
                actor="dispatcher",
                now=now,
            )


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    # SQLite only: the API's answers do not depend on the database (its own tests run both).
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'anxin.db'}")
    upgrade(engine)
    world(sessions)
    context = api_context(sessions)
    admin = Principal(username="admin", role=Role.ADMIN, scope="")
    token = TokenService(SECRET).issue(admin, datetime.now(UTC))
    with serving(context) as url:
        result = subprocess.run(
            [
                str(ST),
                "--config-file",
                str(CONFIG),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--max-time",
                str(MAX_TIME),
                "--seed",
                SEED,
                "--workers",
                "1",
                "--exclude-path",
                "/api/v1/alerts/stream",
                "--header",
                f"Authorization: Bearer {token}",
                "--no-color",
                "--report-dir",
                str(tmp_path),
            ],
            env={**os.environ, "COLUMNS": "120"},
            cwd=tmp_path,  # its cache (.schemathesis/) goes there, not into the repository
            capture_output=True,
            text=True,
            timeout=MAX_TIME + 45,
            check=False,
        )
    lines = result.stdout.splitlines()
    summary = next((i for i, line in enumerate(lines) if line.startswith("API Operations")), 0)
    print("\nschemathesis:", *[line for line in lines[summary:] if line.strip()], sep="\n  ")
    engine.dispose()
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]
