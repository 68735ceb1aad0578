from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from anxin.database import open_database, upgrade


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A real SQLite database in a temporary folder, migrated to the latest schema."""
    engine, factory = open_database(f"sqlite:///{tmp_path / 'db' / 'anxin.db'}")
    upgrade(engine)
    yield factory
    engine.dispose()
