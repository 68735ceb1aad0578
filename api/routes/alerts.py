"""The alert queue and a dispatcher's actions on an alert.

Reading: the queue and one alert. Working an alert (dispatchers, supervisors, admins; not
engineers): claim, release, acknowledge (the device is told help is coming), notes, escalate,
resolve (the device is told). Each action answers with the alert as ``GET /alerts/{id}`` shows
it, is in the alert's timeline, and goes to the change feed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.from_thread
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from alerting import lifecycle
from alerting.lifecycle import ActionResult
from alerting.model import Category, Outcome, Priority
from alerting.store import (
    InvalidCursorError,
    StatusFilter,
    get_alert,
    get_timeline,
    list_queue,
)
from api.alert_views import AlertDetail, AlertOut, alert_detail, alert_in_scope, alert_view
from api.deps import ApiContext, Context, DbSession, Staff, require_role
from api.downlink import DeviceDownlink
from api.params import AlertId, ElderFilter, Moment
from api.problems import problem, role_refused
from api.recent_telemetry import recent_points
from api.tokens import Principal
from api.users import Role
from devices.payloads import AckPayload

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


@router.get(
    "",
    response_model=AlertPage,
    responses={400: problem("A bad cursor.", "invalid cursor"), 403: role_refused("visitor")},
)
def list_alerts(
    session: DbSession,
    user: Staff,
    status_: Annotated[StatusFilter, Query(alias="status")] = StatusFilter.OPEN,
    priority: Priority | None = None,
    category: Category | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    community: Annotated[
        str | None, Query(description="A tier path, e.g. 张家口市/张北县: it and all below it.")
    ] = None,
    since: Annotated[
        Moment | None,
        Query(description="Only alerts created at or after this time (RFC 3339)."),
    ] = None,
    elder_id: ElderFilter = None,
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
            created_since=_utc(since) if since is not None else None,
            elder_id=elder_id,
        )
    except InvalidCursorError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    return AlertPage(
        items=[alert_view(row, user) for row in page.alerts],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{alert_id}",
    response_model=AlertDetail,
    responses={
        403: role_refused("visitor"),
        404: problem("No such alert, or not within your scope.", "alert not found"),
    },
)
def read_alert(alert_id: AlertId, session: DbSession, user: Staff, context: Context) -> AlertDetail:
    """One alert with its elder, the elder's contacts in calling order, the device, the
    timeline (every action: who, when) and the device's telemetry from the day before the
    alert to the day after (at most 300 points; [] without a telemetry store). Engineers get
    no elder, no contacts, no location, and dispatchers' free text withheld."""
    row = get_alert(session, alert_id)
    if row is None or not alert_in_scope(session, row, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="alert not found")
    telemetry = recent_points(context.telemetry, row.device_id, row.created_at, context.clock())
    return alert_detail(session, row, get_timeline(session, alert_id), user, telemetry)


# Working an alert.

# Who works alerts; engineers look after devices, not calls.
AlertWorker = Annotated[
    Principal, Depends(require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN))
]
# Who may release, acknowledge, escalate or resolve an alert someone else holds.
_OVERRIDERS = frozenset({Role.SUPERVISOR, Role.ADMIN})

NO_DOWNLINK = "no device downlink in this process"


_NOT_FOUND = problem("No such alert, or not within your scope.", "alert not found")
_ROLE_REFUSED = problem("Your role may not work alerts.", "the engineer role may not do this")
_FORBIDDEN = problem(
    "Your role may not work alerts, or the alert is held by someone else.",
    "cannot resolve alert 12: it is held by wang; only its holder, a supervisor or an admin may",
)


def _conflict(example: str) -> dict[str, Any]:
    return problem("The alert's status does not allow this now.", example)


def _text_field(max_chars: int, example: str) -> Any:
    # pattern: at least one character that is not a space (blank text → 422, as the schema says)
    return Field(min_length=1, max_length=max_chars, pattern=NOT_BLANK, examples=[example])


# Not blank: a character that is neither whitespace nor one of the separators \x1c-\x1f (which
# Python's str.isspace counts as space and Unicode's White_Space, the schema's \s, does not).
NOT_BLANK = r"[^\s\x1c-\x1f]"


def _not_blank(value: str) -> str:
    if not re.search(NOT_BLANK, value):
        raise ValueError("must not be blank")
    return value


class NoteIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "已电话联系老人，无应答，联系其女儿。"}]}
    )

    text: Annotated[str, _text_field(lifecycle.NOTE_MAX_CHARS, "已电话联系老人，无应答。")]

    _text = field_validator("text")(_not_blank)


class EscalateIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"reason": "老人无应答，家属电话无法接通，需主管决定是否呼叫120。"}]
        }
    )

    reason: Annotated[str, _text_field(lifecycle.REASON_MAX_CHARS, "老人无应答，需主管决定。")]

    _reason = field_validator("reason")(_not_blank)


class ResolveIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"outcome": "community_worker_dispatched", "note": "社区网格员已上门，老人无碍。"},
                {"outcome": "false_alarm"},
            ]
        }
    )

    outcome: Outcome
    note: Annotated[str, Field(max_length=lifecycle.NOTE_MAX_CHARS)] | None = None


@router.post(
    "/{alert_id}/claim",
    response_model=AlertDetail,
    responses={
        403: _ROLE_REFUSED,
        404: _NOT_FOUND,
        409: _conflict("alert 12 is already claimed by wang"),
    },
)
def claim_alert(
    alert_id: AlertId, session: DbSession, user: AlertWorker, context: Context
) -> AlertDetail:
    """Take the alert: status `claimed`, `claimed_by` you. If two dispatchers claim at once,
    exactly one gets it; the other gets 409 naming who holds it. Claiming an alert you already
    hold changes nothing. An alert the system escalated because nobody claimed it in time
    (`escalated`, no holder) is claimed the same way; the reminders stop. The device gets an
    Ack `{"alert_id", "status": "claimed", "message"}` (a dispatcher has the call); without a
    broker connection the timeline says `device_not_told`."""
    return _act(
        session,
        context,
        user,
        alert_id,
        lambda now: lifecycle.claim(session, alert_id, actor=user.username, now=now),
    )


@router.post(
    "/{alert_id}/release",
    response_model=AlertDetail,
    responses={
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        409: _conflict(
            "cannot release alert 12: it is new (only from: claimed, acknowledged, escalated)"
        ),
    },
)
def release_alert(
    alert_id: AlertId, session: DbSession, user: AlertWorker, context: Context
) -> AlertDetail:
    """Give the alert back to the queue: status `new`, no holder. Only the holder, a supervisor
    or an admin."""
    return _act(
        session,
        context,
        user,
        alert_id,
        lambda now: lifecycle.release(
            session, alert_id, actor=user.username, now=now, may_override=_overrides(user)
        ),
    )


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertDetail,
    responses={
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        409: _conflict("cannot acknowledge alert 12: it is new (only from: claimed, escalated)"),
    },
)
def acknowledge_alert(
    alert_id: AlertId, session: DbSession, user: AlertWorker, context: Context
) -> AlertDetail:
    """Tell the device help is coming: it gets an Ack `{"alert_id", "status": "help_coming",
    "message"}` on `anxin/v1/{device_id}/ack`. Status `acknowledged` (an escalated alert stays
    `escalated`). Only the holder, a supervisor or an admin. Without a broker connection in this
    process the action is still taken and the timeline says `device_not_told`."""
    return _act(
        session,
        context,
        user,
        alert_id,
        lambda now: lifecycle.acknowledge(
            session, alert_id, actor=user.username, now=now, may_override=_overrides(user)
        ),
    )


@router.post(
    "/{alert_id}/notes",
    response_model=AlertDetail,
    responses={403: _ROLE_REFUSED, 404: _NOT_FOUND},
)
def add_note(
    alert_id: AlertId, body: NoteIn, session: DbSession, user: AlertWorker, context: Context
) -> AlertDetail:
    """A note on the timeline, at any time, a resolved alert's too; the status stays."""
    return _act(
        session,
        context,
        user,
        alert_id,
        lambda now: lifecycle.add_note(
            session, alert_id, actor=user.username, now=now, text=body.text
        ),
    )


@router.post(
    "/{alert_id}/escalate",
    response_model=AlertDetail,
    responses={
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        409: _conflict(
            "cannot escalate alert 12: it is escalated (only from: claimed, acknowledged)"
        ),
    },
)
def escalate_alert(
    alert_id: AlertId, body: EscalateIn, session: DbSession, user: AlertWorker, context: Context
) -> AlertDetail:
    """Hand the alert up to a supervisor: status `escalated`, the reason on the timeline. The
    holder keeps it. Only the holder, a supervisor or an admin."""
    return _act(
        session,
        context,
        user,
        alert_id,
        lambda now: lifecycle.escalate(
            session,
            alert_id,
            actor=user.username,
            now=now,
            reason=body.reason,
            may_override=_overrides(user),
        ),
    )


@router.post(
    "/{alert_id}/resolve",
    response_model=AlertDetail,
    responses={
        403: _FORBIDDEN,
        404: _NOT_FOUND,
        409: _conflict(
            "cannot resolve alert 12: it is resolved (only from: claimed, acknowledged, escalated)"
        ),
    },
)
def resolve_alert(
    alert_id: AlertId, body: ResolveIn, session: DbSession, user: AlertWorker, context: Context
) -> AlertDetail:
    """Close the alert with an outcome (and an optional note): status `resolved`, `resolved_at`
    and `outcome` set; the device gets an Ack `resolved`. Only the holder, a supervisor or an
    admin; a `new` alert is claimed first. The outcome `visit_needed` also requests a home
    visit for the alert's elder (`alert_id` set, due a day later by default) in the same
    transaction; an alert without a registered elder cannot be closed so (422)."""
    return _act(
        session,
        context,
        user,
        alert_id,
        lambda now: lifecycle.resolve(
            session,
            alert_id,
            actor=user.username,
            now=now,
            outcome=body.outcome,
            note=body.note,
            may_override=_overrides(user),
            visit_due=context.visit_followup_due,
        ),
    )


def _overrides(user: Principal) -> bool:
    return user.role in _OVERRIDERS


def _act(
    session: Session,
    context: ApiContext,
    user: Principal,
    alert_id: AlertId,
    action: Callable[[datetime], ActionResult],
) -> AlertDetail:
    """Scope, the action in one transaction, commit; then tell the device and the feed."""
    row = get_alert(session, alert_id)
    if row is None or not alert_in_scope(session, row, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="alert not found")
    now = context.clock()
    try:
        result = action(now)
        if result.ack is not None and context.downlink is None:
            lifecycle.record_device_not_told(
                session, alert_id, actor=user.username, now=now, ack=result.ack, reason=NO_DOWNLINK
            )
        session.commit()
    except lifecycle.AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="alert not found") from exc
    except lifecycle.NotHolder as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
    except lifecycle.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    except lifecycle.InvalidInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    if result.ack is not None and context.downlink is not None:
        _tell_device(session, context, context.downlink, user, result.alert.device_id, result.ack)
    if result.change is not None:
        # The feed's queues belong to the event loop; this route runs on a worker thread.
        anyio.from_thread.run_sync(context.feed.publish, [result.change])
    return _detail(session, alert_id, user)


def _tell_device(
    session: Session,
    context: ApiContext,
    downlink: DeviceDownlink,
    user: Principal,
    device_id: str,
    ack: AckPayload,
) -> None:
    """After the commit, as ingest does: the device hears only of what is stored."""
    try:
        downlink.send_ack(device_id, ack)
    except Exception as exc:  # any failure of the port: the action stands, the timeline says so
        log.error("alert.ack_not_sent", alert_id=ack.alert_id, device_id=device_id, error=repr(exc))
        lifecycle.record_device_not_told(
            session,
            ack.alert_id,
            actor=user.username,
            now=context.clock(),
            ack=ack,
            reason=f"sending failed: {exc}"[:200],
        )
        session.commit()


def _detail(session: Session, alert_id: int, user: Principal) -> AlertDetail:
    row = get_alert(session, alert_id)
    if row is None:  # deleted meanwhile: nothing deletes alerts, but say so rather than crash
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="alert not found")
    return alert_detail(session, row, get_timeline(session, alert_id), user)


def _utc(moment: datetime) -> datetime:
    """Without an offset: UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
