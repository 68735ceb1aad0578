"""ingest members: the processes sharing the uplinks (the takeover of a dead one's session),
and Zigbee2MQTT's state memory, shared by them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import devices.sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_members",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("subscriptions", sa.JSON(), nullable=False),
        sa.Column("joined_at", devices.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", devices.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_ingest_members")),
    )
    op.create_table(
        "zigbee_states",
        sa.Column("friendly_name", sa.String(length=255), nullable=False),
        sa.Column("active", sa.JSON(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("updated_at", devices.sql.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("friendly_name", name=op.f("pk_zigbee_states")),
    )


def downgrade() -> None:
    op.drop_table("zigbee_states")
    op.drop_table("ingest_members")
