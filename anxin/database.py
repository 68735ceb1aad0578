"""The SQL database: every package's tables, migrations (Alembic) and session factories."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# Importing the table modules registers their tables on the shared metadata.
from alerting import deadlines as _deadline_tables  # noqa: F401
from alerting import outbox as _outbox_tables  # noqa: F401
from alerting import platform as _platform_tables  # noqa: F401
from alerting import store as _alert_tables  # noqa: F401
from alerting import visit_store as _visit_tables  # noqa: F401
from api import audit as _audit_tables  # noqa: F401
from api import users as _user_tables  # noqa: F401
from devices import elders as _elder_tables  # noqa: F401
from devices import registry as _device_tables  # noqa: F401
from devices.sql import Base, make_engine, normalise_url
from ingest import dead_letters as _dead_letter_tables  # noqa: F401
from ingest import membership as _member_tables  # noqa: F401
from ingest import zigbee_memory as _zigbee_tables  # noqa: F401

MIGRATIONS = Path(__file__).parent / "migrations"
metadata = Base.metadata


def prepare_sqlite_dir(url: str) -> None:
    """SQLite needs the folder of its file to exist."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def open_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    prepare_sqlite_dir(url)
    engine = make_engine(url)
    return engine, sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


class SchemaNotCurrentError(Exception):
    """The database schema is older than this version of anxin."""


def require_current_schema(engine: Engine) -> None:
    """Refuse to run on a schema that is missing or behind: `anxin db upgrade` first."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != script.get_current_head():
        found = current or "no schema"
        raise SchemaNotCurrentError(
            f"the database schema is not current ({found}): run `anxin db upgrade`"
        )


def database_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "not reachable" for readiness
        return False
