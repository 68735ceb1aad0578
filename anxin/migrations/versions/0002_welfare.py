"""welfare time rules: the elder's own welfare settings, and the deadlines of the time rules

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import devices.sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("elders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("welfare", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_elders_updated_at"), ["updated_at"], unique=False)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_created_at"), ["created_at"], unique=False)
    op.create_table(
        "welfare_deadlines",
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("elder_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("basis_at", devices.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("planned_at", devices.sql.UtcDateTime(timezone=True), nullable=True),
        sa.Column("due_at", devices.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("rule", "subject", name=op.f("pk_welfare_deadlines")),
    )
    with op.batch_alter_table("welfare_deadlines", schema=None) as batch_op:
        batch_op.create_index("ix_welfare_deadlines_due_at", ["due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_welfare_deadlines_elder_id"), ["elder_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("welfare_deadlines")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_created_at"))
    with op.batch_alter_table("elders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_elders_updated_at"))
        batch_op.drop_column("welfare")
