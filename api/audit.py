"""The audit of administration: who changed which user, elder, contact list, device or import.

Written in the same transaction as the change it records, so one is never without the other.
No passwords and no elders' personal data: an elder's change names the fields changed, not
their values; a user's or device's records the values (roles, scopes, models are not personal).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from devices.sql import Base, UtcDateTime


class AuditRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    # "user.created", "elder.updated", "device.created", "devices.imported", …
    action: Mapped[str] = mapped_column(String(32))
    # What was changed: "user:wang", "elder:3", "device:pendant-0017", "import:fleet.csv".
    target: Mapped[str] = mapped_column(String(128))
    # The community it belongs to, so that a scoped admin reads the audit of their own; None:
    # no community (an unscoped user, a device of nobody).
    community: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    community: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add the entry to the session: it commits (or rolls back) with the change itself."""
    session.add(
        AuditRow(
            at=at,
            actor=actor,
            action=action,
            target=target[:128],
            community=community or None,
            detail=detail or {},
        )
    )
