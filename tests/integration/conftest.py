from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from anxin.database import open_database, upgrade
from tests.support.influx import InfluxServer, running_influxd
from tests.support.postgres import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole run, started on first use; each test takes a database."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (``postgresql://…``), dropped afterwards."""
    with postgres_server.fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A real database, migrated to the latest schema: SQLite in a temporary folder, or a fresh
    database on the run's PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'anxin.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine, factory = open_database(url)
    upgrade(engine)
    yield factory
    engine.dispose()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """One real InfluxDB 1.6 for the whole run, started on first use; tests take a database."""
    with running_influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def influx_database(influxd: InfluxServer, request: pytest.FixtureRequest) -> str:
    """A fresh database on the run's influxd, named after the test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    influxd.create_database(name)
    return name
