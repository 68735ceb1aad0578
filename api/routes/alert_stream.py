"""``GET /api/v1/alerts/stream``: alert changes as Server-Sent Events, for the console.

Served with sse-starlette's ``EventSourceResponse``: it encodes events, sends the keep-alive
comments from a task of its own, notices a client that went away (the ASGI disconnect message)
and drops one that stopped reading (``send_timeout``), which a plain ``StreamingResponse`` would
leave to hand-written code. What to send, and when, is ``api/streaming.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from fastapi.security import OAuth2PasswordBearer
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from alerting.store import TimelineItem, latest_event_id, skip_to_newest, timeline_after
from api.alert_views import alert_view, timeline_view
from api.deps import TOKEN_URL, ApiContext, Context, unauthorized
from api.problems import problem
from api.streaming import EVENTS_SENT, STREAMS_RESYNCED, StreamsBusy, TimelineCursor
from api.tokens import InvalidTokenError, Principal
from devices.elders import in_scope

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)

CREATED, UPDATED = "alert.created", "alert.updated"
# Sent first when a resumed stream was too far behind: reload the queue.
RESYNC = "alerts.resync"


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
    try:
        return context.tokens.verify(token)
    except InvalidTokenError as exc:
        raise unauthorized("invalid or expired token") from exc


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
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="Resume after this event (EventSource)."),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, description="The same as the Last-Event-ID header, for a fresh EventSource."),
    ] = None,
) -> EventSourceResponse:
    """Alert changes as they happen, within your scope: `alert.created` when an alert opens,
    `alert.updated` for every later line of its timeline (a repeat counted, claimed, released,
    acknowledged, a note, escalated, resolved, cancelled, resolved by the system, the device not
    told). Each event's `id` is the timeline row's id, its `data` one JSON object
    `{"alert": <as an item of GET /api/v1/alerts, as it is now>, "event": {"id", "alert_id",
    "at", "action", "kind", "actor", "detail"}}` (`kind` is `action` again).

    Without `Last-Event-ID` the stream starts from now. With it (EventSource sends it when it
    reconnects) it first sends what came after that id; if more than the backlog limit (1000)
    did, it sends an `alerts.resync` event (`{"skipped_after": id}`: reload the queue) and then
    only the newest 1000. A comment `: keep-alive` comes every 15 s so that proxies keep the
    connection open. A change committed late by a concurrent transaction may arrive after
    events with higher ids: de-duplicate by id."""
    settings = context.streams.settings
    after = last_event_id_header if last_event_id_header is not None else last_event_id
    # Take the slot now, so that past the limit the answer is a 503, not a stream that ends.
    try:
        slot = context.streams.open_stream(context.sessions, context.feed)
    except StreamsBusy as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in _events(context, user, after):
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
    context: ApiContext, user: Principal, resume_after: int | None
) -> AsyncIterator[ServerSentEvent]:
    watch, settings = context.streams, context.streams.settings
    start, skipped = await anyio.to_thread.run_sync(_start, context, resume_after, settings.backlog)
    if skipped:
        STREAMS_RESYNCED.inc()
        yield ServerSentEvent(
            data=json.dumps({"skipped_after": start}), event=RESYNC, id=str(start), sep="\n"
        )
    cursor = TimelineCursor(start, gap_grace_s=settings.gap_grace_s)
    while not watch.closing:
        ids, visible = await anyio.to_thread.run_sync(
            _read, context, user, cursor.after, cursor.gaps, settings.batch
        )
        cursor.advance(ids)
        for event_id, kind, data in visible:
            EVENTS_SENT.inc()
            yield ServerSentEvent(data=data, event=kind, id=str(event_id), sep="\n")
        if len(ids) == settings.batch:
            continue  # more to read now
        # With gaps to look for, look again after a poll interval even if nothing is new.
        await watch.wait(cursor.after, settings.poll_s if cursor.gaps else 60.0)


def _start(context: ApiContext, resume_after: int | None, backlog: int) -> tuple[int, bool]:
    """The id to read after, and whether older events were skipped to get there."""
    with context.sessions() as session:
        latest = latest_event_id(session)
        if resume_after is None:
            return latest, False
        if resume_after > latest:  # an id this database never gave (it was replaced?)
            return latest, True
        newest = skip_to_newest(session, resume_after, backlog)
        return (newest, True) if newest is not None else (resume_after, False)


def _read(
    context: ApiContext, user: Principal, after: int, gaps: list[int], batch: int
) -> tuple[list[int], list[tuple[int, str, str]]]:
    """The ids read (all of them, for the cursor) and the events this user may see."""
    with context.sessions() as session:
        items = timeline_after(session, after, limit=batch, also=gaps)
        ids = [item.event.id for item in items]
        visible = [
            (item.event.id, _kind(item), _data(item, user))
            for item in items
            if _visible(item, user)
        ]
    return ids, visible


def _visible(item: TimelineItem, user: Principal) -> bool:
    if not user.scope:
        return True
    return item.alert.elder_id is not None and in_scope(item.community, user.scope)


def _kind(item: TimelineItem) -> str:
    return CREATED if item.event.action == "created" else UPDATED


def _data(item: TimelineItem, user: Principal) -> str:
    entry = timeline_view(item.event, user).model_dump(mode="json")
    event: dict[str, Any] = {
        "id": item.event.id,
        "alert_id": item.event.alert_id,
        **entry,
        "kind": entry["action"],
    }
    alert = alert_view(item.alert, user).model_dump(mode="json")
    return json.dumps({"alert": alert, "event": event}, ensure_ascii=False)
