"""escalation of unclaimed alerts and the notification outbox

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-22 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import devices.sql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_at", devices.sql.UtcDateTime(timezone=True)))
        batch_op.add_column(sa.Column("escalated_at", devices.sql.UtcDateTime(timezone=True)))
        batch_op.add_column(sa.Column("reminded_at", devices.sql.UtcDateTime(timezone=True)))
        batch_op.add_column(
            sa.Column("reminders", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("contacts_notified_at", devices.sql.UtcDateTime(timezone=True))
        )
    # Alerts already open entered the queue when they were created (claimed ones are not
    # waiting; a release sets it again).
    op.execute("UPDATE alerts SET queued_at = created_at")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column(
            "queued_at", existing_type=devices.sql.UtcDateTime(timezone=True), nullable=False
        )
        batch_op.create_index(
            "ix_alerts_unclaimed", ["status", "priority_rank", "queued_at"], unique=False
        )
        batch_op.create_index(
            "ix_alerts_reminded", ["status", "priority_rank", "reminded_at"], unique=False
        )

    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", devices.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("alert_ids", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("next_attempt_at", devices.sql.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("done_at", devices.sql.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
    )
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_outbox_due", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_outbox_due")
    op.drop_table("notification_outbox")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_reminded")
        batch_op.drop_index("ix_alerts_unclaimed")
        batch_op.drop_column("contacts_notified_at")
        batch_op.drop_column("reminders")
        batch_op.drop_column("reminded_at")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("queued_at")
