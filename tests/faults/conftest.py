from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import migrated
from tests.support.postgres import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the run's PostgreSQL, migrated to the latest schema."""
    with postgres_server.fresh_database("anxin_faults") as url:
        migrated(url)
        yield url
