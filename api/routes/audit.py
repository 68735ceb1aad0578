"""``GET /api/v1/audit``: who changed which user, elder, contact list or device, newest first.
Admins; a scoped admin reads the entries of their own communities."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api.audit import AuditRow
from api.deps import DbSession, RegistryAdmin
from api.pagination import decode_int_cursor, encode_cursor
from api.problems import problem, role_refused
from devices.elders import within_community

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 41,
                    "at": "2026-12-02T06:10:00Z",
                    "actor": "admin",
                    "action": "elder.updated",
                    "target": "elder:3",
                    "community": "张家口市/张北县/花园街道/幸福社区",
                    "detail": {"fields": ["address", "contacts"], "contacts": 2},
                }
            ]
        },
    )

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    community: str | None
    # Values for users and devices (roles, scopes, models); for elders, the names of the fields
    # changed only; for an import, its counts. Never a password.
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


@router.get(
    "",
    response_model=AuditPage,
    responses={403: role_refused("supervisor"), 400: problem("A bad cursor.", "invalid cursor")},
)
def list_audit(
    session: DbSession,
    admin: RegistryAdmin,
    target: Annotated[
        str | None, Query(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$", examples=["elder:3"])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> AuditPage:
    """Newest first; ``target`` keeps one row's history (``user:wang``, ``device:p-1``…)."""
    query = select(AuditRow).order_by(AuditRow.id.desc())
    if admin.scope:
        query = query.where(within_community(admin.scope, AuditRow.community))
    if target is not None:
        query = query.where(AuditRow.target == target)
    if cursor is not None:
        query = query.where(AuditRow.id < decode_int_cursor(cursor))
    rows = list(session.scalars(query.limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return AuditPage(
        items=[AuditOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )
