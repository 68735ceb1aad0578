"""The alert queue: list and read alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict

from alerting.model import AlertStatus, AlertType, Category, Outcome, Priority
from alerting.store import (
    AlertRow,
    InvalidCursorError,
    StatusFilter,
    get_alert,
    get_timeline,
    list_queue,
)
from api.deps import CurrentUser, DbSession
from devices.elders import ElderRow, in_scope

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    elder_id: int | None
    type: AlertType
    category: Category
    priority: Priority
    status: AlertStatus
    count: int
    created_at: datetime
    updated_at: datetime
    occurred_at: datetime
    last_occurred_at: datetime
    claimed_at: datetime | None
    claimed_by: str | None
    resolved_at: datetime | None
    outcome: Outcome | None
    location: dict[str, Any] | None
    attributes: dict[str, Any]


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    action: str
    actor: str
    detail: dict[str, Any]


class AlertDetail(AlertOut):
    timeline: list[TimelineEntry]


@router.get("", response_model=AlertPage)
def list_alerts(
    session: DbSession,
    user: CurrentUser,
    status_: Annotated[StatusFilter, Query(alias="status")] = StatusFilter.OPEN,
    priority: Priority | None = None,
    category: Category | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    community: Annotated[
        str | None, Query(description="A tier path, e.g. 张家口市/张北县: it and all below it.")
    ] = None,
) -> AlertPage:
    """The queue, most urgent first and then oldest first, within the caller's scope."""
    try:
        page = list_queue(
            session,
            status=status_,
            priority=priority,
            category=category,
            limit=limit,
            cursor=cursor,
            communities=[user.scope, community or ""],
        )
    except InvalidCursorError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    return AlertPage(
        items=[AlertOut.model_validate(row) for row in page.alerts],
        next_cursor=page.next_cursor,
    )


@router.get("/{alert_id}", response_model=AlertDetail)
def read_alert(alert_id: int, session: DbSession, user: CurrentUser) -> AlertDetail:
    row = get_alert(session, alert_id)
    if row is None or not _in_scope(session, row, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="alert not found")
    timeline = [TimelineEntry.model_validate(e) for e in get_timeline(session, alert_id)]
    return AlertDetail(**AlertOut.model_validate(row).model_dump(), timeline=timeline)


def _in_scope(session: DbSession, alert: AlertRow, scope: str) -> bool:
    if not scope:
        return True
    elder = session.get(ElderRow, alert.elder_id) if alert.elder_id is not None else None
    return elder is not None and in_scope(elder.community, scope)
