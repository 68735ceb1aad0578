"""Alembic environment: runs against the engine that ``anxin db upgrade`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from anxin.database import metadata

engine: Engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
