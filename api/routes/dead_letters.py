"""Dead letters, for engineers: what could not be used, and why."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api.deps import DbSession, Engineer
from api.pagination import decode_int_cursor, encode_cursor
from api.problems import problem, role_refused
from ingest.dead_letters import DeadLetterRow

router = APIRouter(prefix="/api/v1/dead-letters", tags=["dead letters"])


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 5,
                    "received_at": "2026-11-22T03:00:00Z",
                    "topic": "anxin/v1/pendant-0017/event",
                    "device_id": "pendant-0017",
                    "reason": "unknown event type 'fire'",
                    "size": 16,
                    "payload": '{"type": "fire"}',
                    "payload_b64": None,
                }
            ]
        }
    )

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    size: int
    # UTF-8 payloads as text; anything else base64-encoded.
    payload: str | None
    payload_b64: str | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None


@router.get(
    "",
    response_model=DeadLetterPage,
    responses={403: role_refused("dispatcher"), 400: problem("A bad cursor.", "invalid cursor")},
)
def list_dead_letters(
    session: DbSession,
    _user: Engineer,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> DeadLetterPage:
    """Newest first."""
    query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc())
    if device_id is not None:
        query = query.where(DeadLetterRow.device_id == device_id)
    if cursor is not None:
        query = query.where(DeadLetterRow.id < decode_int_cursor(cursor))
    rows = list(session.scalars(query.limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return DeadLetterPage(items=[dead_letter_out(r) for r in rows[:limit]], next_cursor=next_cursor)


def dead_letter_out(row: DeadLetterRow) -> DeadLetterOut:
    try:
        text, b64 = row.payload.decode("utf-8"), None
    except UnicodeDecodeError:
        text, b64 = None, base64.b64encode(row.payload).decode()
    return DeadLetterOut(
        id=row.id,
        received_at=row.received_at,
        topic=row.topic,
        device_id=row.device_id,
        reason=row.reason,
        size=len(row.payload),
        payload=text,
        payload_b64=b64,
    )
