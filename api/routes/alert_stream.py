"""``GET /api/v1/alerts/stream``: alert changes as Server-Sent Events, for the console.

Served with sse-starlette's ``EventSourceResponse``: it encodes events, sends the keep-alive
comments from a task of its own, notices a client that went away (the ASGI disconnect message)
and drops one that stopped reading (``send_timeout``), which a plain ``StreamingResponse`` would
leave to hand-written code. What to send, and when, is ``api/streaming.py``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import structlog
from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from alerting.store import (
    TimelineItem,
    latest_event_id,
    skip_to_newest,
    timeline_after,
    timeline_ids_between,
)
from api.alert_views import alert_view, sees_people, timeline_view
from api.deps import TOKEN_URL, ApiContext, Context, unauthorized, verified
from api.problems import problem, role_refused
from api.streaming import (
    EVENTS_SENT,
    STREAMS_RESYNCED,
    InvalidPositionError,
    StreamPosition,
    StreamsBusy,
    TimelineCursor,
)
from api.tokens import Principal
from api.users import Role
from devices.elders import in_scope

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)

CREATED, UPDATED = "alert.created", "alert.updated"
# Sent first when a resumed stream was too far behind: reload the queue.
RESYNC = "alerts.resync"
# How far below the newest row a fresh stream looks for rows still being committed.
FRESH_GAP_WINDOW = 256


def stream_principal(
    context: Context,
    header_token: Annotated[str | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(description="The bearer token, for EventSource, which cannot set headers."),
    ] = None,
) -> Principal:
    """The bearer token from the header, or (this endpoint only) from ``?access_token=``."""
    token = header_token or access_token
    if not token:
        raise unauthorized("not authenticated")
    user = verified(context, token)
    if user.role is Role.VISITOR:  # the queue is the control room's, not the visitors'
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the visitor role may not do this")
    return user


_EXAMPLE = (
    "id: 57\n"
    "event: alert.updated\n"
    'data: {"alert": {"id": 12, "device_id": "pendant-0017", "status": "claimed", "…": "…"}, '
    '"event": {"id": 57, "alert_id": 12, "action": "claimed", "kind": "claimed", '
    '"actor": "wang", "at": "2026-11-22T03:00:41Z", "detail": {}}}\n\n'
    ": keep-alive\n\n"
)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`.",
            "content": {"text/event-stream": {"example": _EXAMPLE}},
        },
        401: problem("No token, or a bad or expired one.", "not authenticated"),
        403: role_refused("visitor"),
        503: problem(
            "This process serves as many streams as it may.",
            "too many alert streams open (at most 200)",
        ),
    },
)
async def stream_alerts(
    context: Context,
    user: Annotated[Principal, Depends(stream_principal)],
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=8000,
            description="Resume after this event's `id` (EventSource sends it by itself).",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            max_length=8000,
            description="The same as the Last-Event-ID header, for a fresh EventSource.",
        ),
    ] = None,
) -> EventSourceResponse:
    """Alert changes as they happen, within your scope: `alert.created` when an alert opens,
    `alert.updated` for every later line of its timeline (a repeat counted, claimed, released,
    acknowledged, a note, escalated, resolved, cancelled, resolved by the system, the device not
    told). Each event's `id` is the stream's position after it: the timeline row's id, or,
    while rows below it may still be committed by transactions in flight, that id, `~` and the
    ids still awaited (`12~11`, `40~31-33,38`): send it back as it is. Its `data` is one JSON
    object
    `{"alert": <as an item of GET /api/v1/alerts, as it is now>, "event": {"id", "alert_id",
    "at", "action", "kind", "actor", "detail"}}` (`kind` is `action` again).

    Without `Last-Event-ID` the stream starts from the response: every change committed once
    the 200 is back is on it. With it (EventSource sends it when it
    reconnects) it first sends what came after that id; if more than the backlog limit (1000)
    did, it sends an `alerts.resync` event (`{"skipped_after": id}`: reload the queue) and then
    only the newest 1000. A comment `: keep-alive` comes every 15 s so that proxies keep the
    connection open. A change committed late by a concurrent transaction may arrive after
    events with higher ids (`event.id` in `data` is the row's id). Resuming on another API
    replica (on the same database) is the same: no event missed, none repeated."""
    settings = context.streams.settings
    token = last_event_id_header if last_event_id_header is not None else last_event_id
    try:
        after = StreamPosition.parse(token) if token else None
    except InvalidPositionError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    # Take the slot now, so that past the limit the answer is a 503, not a stream that ends.
    try:
        slot = context.streams.open_stream(context.sessions, context.feed)
    except StreamsBusy as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    # The position is taken before the 200 goes out: whatever is committed once the client
    # holds the response is on the stream, so a console that opens it and then loads the
    # queue misses nothing in between.
    try:
        start, skipped = await anyio.to_thread.run_sync(
            _start, context, after, context.streams.settings.backlog
        )
    except BaseException:
        slot.release()
        raise

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in _events(context, user, start, skipped):
                yield event
        finally:
            slot.release()

    return EventSourceResponse(
        events(),
        ping=settings.keepalive_s,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
        send_timeout=settings.send_timeout_s,
        # Also released here: a stream cut before its first event never runs the generator.
        background=BackgroundTask(slot.release),
    )


async def _events(
    context: ApiContext, user: Principal, start: StreamPosition, skipped: bool
) -> AsyncIterator[ServerSentEvent]:
    watch, settings = context.streams, context.streams.settings
    if skipped:
        STREAMS_RESYNCED.inc()
        yield ServerSentEvent(
            data=json.dumps({"skipped_after": start.after}),
            event=RESYNC,
            id=start.token(),
            sep="\n",
        )
    cursor = TimelineCursor(start.after, gaps=start.gaps, gap_grace_s=settings.gap_grace_s)
    people = sees_people(user)
    while not watch.closing:
        after, gaps = cursor.after, tuple(cursor.gaps)
        try:
            rows = await watch.shared_read(
                (after, gaps), functools.partial(_read, context, after, gaps, settings.batch)
            )
        except SQLAlchemyError as exc:  # the database is away: keep the stream, try again
            log.warning("sse.read_failed", error=repr(exc)[:300])
            await watch.rest(settings.poll_s * 4)
            continue
        if not rows:
            cursor.advance(())  # gaps past their grace are given up
        for row in rows:
            # Row by row: each event's id is the position right after it.
            cursor.advance((row.id,))
            if row.visible_to(user.scope):
                EVENTS_SENT.inc()
                yield ServerSentEvent(
                    data=row.data if people else row.data_redacted,
                    event=row.kind,
                    id=cursor.position.token(),
                    sep="\n",
                )
        if len(rows) == settings.batch:
            continue  # more to read now
        # With gaps to look for, look again after a poll interval even if nothing is new.
        await watch.wait(cursor.after, settings.poll_s if cursor.gaps else 60.0)


def _start(
    context: ApiContext, resume: StreamPosition | None, backlog: int
) -> tuple[StreamPosition, bool]:
    """Where to read from, and whether older events were skipped to get there."""
    with context.sessions() as session:
        latest = latest_event_id(session)
        if resume is None:
            # Ids below the newest still missing may be transactions in flight (members
            # storing at once): awaited as a resumed stream's gaps are, not lost.
            low = max(0, latest - FRESH_GAP_WINDOW)
            present = timeline_ids_between(session, low, latest)
            gaps = tuple(n for n in range(low + 1, latest) if n not in present)
            return StreamPosition(after=latest, gaps=gaps), False
        if resume.after > latest:  # an id this database never gave (it was replaced?)
            return StreamPosition(after=latest), True
        newest = skip_to_newest(session, resume.after, backlog)
        if newest is not None:
            return StreamPosition(after=newest), True
        return resume, False


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamRow:
    """One timeline row ready to send: read and encoded once for every connection."""

    id: int
    kind: str
    elder_id: int | None
    community: str | None
    data: str
    # For those who see no personal data (engineers).
    data_redacted: str

    def visible_to(self, scope: str) -> bool:
        if not scope:
            return True
        return self.elder_id is not None and in_scope(self.community, scope)


def _read(context: ApiContext, after: int, gaps: tuple[int, ...], batch: int) -> list[StreamRow]:
    with context.sessions() as session:
        return [
            StreamRow(
                id=item.event.id,
                kind=CREATED if item.event.action == "created" else UPDATED,
                elder_id=item.alert.elder_id,
                community=item.community,
                data=_data(item, people=True),
                data_redacted=_data(item, people=False),
            )
            for item in timeline_after(session, after, limit=batch, also=gaps)
        ]


def _data(item: TimelineItem, *, people: bool) -> str:
    entry = timeline_view(item.event, people).model_dump(mode="json")
    event: dict[str, Any] = {
        "id": item.event.id,
        "alert_id": item.event.alert_id,
        **entry,
        "kind": entry["action"],
    }
    alert = alert_view(item.alert, people).model_dump(mode="json")
    return json.dumps({"alert": alert, "event": event}, ensure_ascii=False)
