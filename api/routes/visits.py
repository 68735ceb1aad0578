"""Home visits (巡访): ``/api/v1/visits`` and an elder's visits.

Who: dispatchers, supervisors and admins request, assign, cancel and complete visits (an
outcome phoned in); a visitor (community worker) sees the visits and elders of their community,
claims a visit, and completes the visits they hold or that nobody holds. Engineers: none of it
(personal data). Every caller sees only visits of elders within their scope.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting import visit_store
from alerting.store import AlertRow
from alerting.visit_store import InvalidVisitCursorError, VisitEventRow, VisitResult, VisitRow
from alerting.visits import (
    NOTE_MAX_CHARS,
    NotAssignee,
    VisitConflict,
    VisitError,
    VisitNotFound,
    VisitOutcome,
    VisitReason,
    VisitStatus,
)
from api.deps import ApiContext, Context, DbSession, require_role
from api.params import ID_MAX, ElderId, Moment, RowId
from api.problems import problem, role_refused
from api.tokens import Principal
from api.users import Role, UserRow
from devices.elders import ElderRow, in_scope

router = APIRouter(prefix="/api/v1", tags=["visits"])

# Who sees visits; engineers do not (they are about people).
VisitReader = Annotated[
    Principal,
    Depends(require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN, Role.VISITOR)),
]
# Who arranges visits: the control room.
VisitArranger = Annotated[
    Principal, Depends(require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN))
]
# Who may take or complete a visit another worker holds.
_OVERRIDERS = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})
# Who may be sent on a visit.
_GOERS = frozenset({Role.VISITOR, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})

# A visit requested by hand without a due time: within a day.
DEFAULT_DUE = timedelta(hours=24)

VisitIdPath = Annotated[int, Path(ge=1, le=ID_MAX, description="The visit's id.")]


def _text_only(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a date and time as text (RFC 3339)")
    return value


BodyMoment = Annotated[datetime, BeforeValidator(_text_only)]
Note = Annotated[str, Field(max_length=NOTE_MAX_CHARS)]
Username = Annotated[str, Field(min_length=1, max_length=64, examples=["wang_grid"])]


_FILTERS: dict[str, tuple[VisitStatus, ...]] = {
    # As the alert list's "open": not closed yet, held or not.
    "open": (VisitStatus.OPEN, VisitStatus.ASSIGNED),
    "unassigned": (VisitStatus.OPEN,),
    "assigned": (VisitStatus.ASSIGNED,),
    "done": (VisitStatus.DONE,),
    "cancelled": (VisitStatus.CANCELLED,),
    "all": (),
}
StatusQuery = Annotated[
    str,
    Query(
        alias="status",
        pattern="^(open|unassigned|assigned|done|cancelled|all)$",
        description="`open`: open or assigned (not closed); `unassigned`: open only.",
    ),
]


class VisitContact(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    name: str
    phone: str
    relation: str
    label: str | None


class VisitElder(BaseModel):
    id: int
    name: str
    phone: str | None
    address: str | None
    community: str | None
    categories: list[str]
    key_safe_note: str | None
    # In calling order.
    contacts: list[VisitContact]


class VisitOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "elder_id": 3,
                    "reason": "alert_followup",
                    "alert_id": 12,
                    "alert_type": "sos",
                    "assignee": "wang_grid",
                    "status": "assigned",
                    "due_at": "2026-11-23T03:00:00Z",
                    "overdue": False,
                    "outcome": None,
                    "notes": "电话无人接听，请上门查看。",
                    "created_by": "li_dispatch",
                    "created_at": "2026-11-22T03:00:00Z",
                    "updated_at": "2026-11-22T03:10:00Z",
                    "assigned_at": "2026-11-22T03:10:00Z",
                    "done_at": None,
                    "escalated_at": None,
                    "elder": {
                        "id": 3,
                        "name": "张秀英",
                        "phone": "13800138000",
                        "address": "花园街3号",
                        "community": "张家口市/张北县/花园街道/幸福社区",
                        "categories": ["living_alone", "advanced_age"],
                        "key_safe_note": "钥匙在门口花盆下",
                        "contacts": [
                            {
                                "position": 1,
                                "name": "李明",
                                "phone": "13900139000",
                                "relation": "family",
                                "label": "儿子",
                            }
                        ],
                    },
                }
            ]
        }
    )

    id: int
    elder_id: int
    reason: VisitReason
    alert_id: int | None
    # The type of the alert it came from, so a visitor knows why without reading the queue.
    alert_type: str | None
    assignee: str | None
    status: VisitStatus
    due_at: datetime
    # Still open past its due time.
    overdue: bool
    outcome: VisitOutcome | None
    notes: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    assigned_at: datetime | None
    done_at: datetime | None
    escalated_at: datetime | None
    elder: VisitElder


class VisitEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    visit_id: int
    at: datetime
    action: str
    actor: str
    detail: dict[str, Any]


class VisitDetail(VisitOut):
    # Every step: requested, assigned, done, cancelled, overdue_escalated.
    timeline: list[VisitEventOut]


class VisitPage(BaseModel):
    items: list[VisitOut]
    next_cursor: str | None


class ElderVisits(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "elder_id": 3,
                    "visits": [],
                    "timeline": [
                        {
                            "id": 1,
                            "visit_id": 7,
                            "at": "2026-11-22T03:00:00Z",
                            "action": "requested",
                            "actor": "li_dispatch",
                            "detail": {"reason": "alert_followup", "alert_id": 12},
                        }
                    ],
                }
            ]
        }
    )

    elder_id: int
    visits: list[VisitOut]
    # The elder's visit timeline, oldest first: every step of every visit.
    timeline: list[VisitEventOut]


class VisitIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"elder_id": 3, "due_at": "2026-11-23T09:00:00+08:00", "notes": "节前走访"}
            ]
        },
    )

    elder_id: RowId
    # When it should be made by; a day from now if not said.
    due_at: BodyMoment | None = None
    notes: Note | None = None
    # Send someone at once (as POST …/assign does).
    assignee: Username | None = None


class AssignIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"assignee": "wang_grid"}]}
    )

    assignee: Username


class CancelIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "老人已入院，无需上门"}]}
    )

    reason: Note | None = None


class CompleteIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"outcome": "well", "note": "老人身体无碍，手机没电未接电话。"},
                {"outcome": "needed_help"},
            ]
        },
    )

    outcome: VisitOutcome
    note: Note | None = None


_NOT_FOUND = problem("No such visit, or not within your scope.", "visit not found")
_REFUSED = role_refused("engineer")
_CONFLICT = problem(
    "The visit's status does not allow this now.",
    "cannot complete visit 7: it is done (only from: open, assigned)",
)
_NOT_ASSIGNEE = problem(
    "Your role may not do this, or the visit is held by another worker.",
    "cannot complete visit 7: it is assigned to wang_grid; only they, a dispatcher, "
    "a supervisor or an admin may",
)


@router.get(
    "/visits",
    response_model=VisitPage,
    responses={400: problem("A bad cursor.", "invalid cursor"), 403: _REFUSED},
)
def list_visits(
    session: DbSession,
    user: VisitReader,
    context: Context,
    status_: StatusQuery = "open",
    elder_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    assignee: Annotated[
        str | None, Query(max_length=64, description="A username; `me` for yourself.")
    ] = None,
    due_before: Annotated[
        Moment | None, Query(description="Only visits due before this time (RFC 3339).")
    ] = None,
    community: Annotated[str | None, Query(description="A tier path: it and all below it.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> VisitPage:
    """Visits within your scope, soonest due first."""
    try:
        page = visit_store.list_visits(
            session,
            statuses=_FILTERS[status_],
            communities=[user.scope, community or ""],
            elder_id=elder_id,
            assignee=user.username if assignee == "me" else assignee,
            due_before=_utc(due_before) if due_before is not None else None,
            limit=limit,
            cursor=cursor,
        )
    except InvalidVisitCursorError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from exc
    now = context.clock()
    return VisitPage(
        items=[visit_view(session, row, now) for row in page.visits], next_cursor=page.next_cursor
    )


@router.post(
    "/visits",
    response_model=VisitDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: _REFUSED,
        404: problem("No such elder, or not within your scope.", "elder not found"),
        422: problem(
            "The assignee may not make this visit.", "wang_grid cannot visit outside 幸福社区"
        ),
    },
)
def request_visit(
    body: VisitIn, session: DbSession, user: VisitReader, context: Context
) -> VisitDetail:
    """Request a visit by hand (reason `manual`): status `open`, or `assigned` with an
    assignee. A visitor may request one in their community (to record a visit they made,
    complete it at once)."""
    elder = _visible_elder(session, user, body.elder_id)
    now = context.clock()
    due = _utc(body.due_at) if body.due_at is not None else now + DEFAULT_DUE
    try:
        row = visit_store.request_visit(
            session,
            elder_id=elder.id,
            reason=VisitReason.MANUAL,
            due_at=due,
            actor=user.username,
            now=now,
            notes=body.notes if body.notes and body.notes.strip() else None,
        )
        if body.assignee is not None:
            if user.role is Role.VISITOR and body.assignee != user.username:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, detail="a visitor may only take a visit themselves"
                )
            _check_goer(session, body.assignee, elder)
            visit_store.assign(
                session,
                row.id,
                assignee=body.assignee,
                actor=user.username,
                now=now,
                may_override=True,
            )
        session.commit()
    except VisitError as exc:
        raise _http(exc) from exc
    return _detail(session, row.id, now)


@router.get(
    "/visits/{visit_id}",
    response_model=VisitDetail,
    responses={403: _REFUSED, 404: _NOT_FOUND},
)
def read_visit(
    visit_id: VisitIdPath, session: DbSession, user: VisitReader, context: Context
) -> VisitDetail:
    """One visit with its elder, the contacts in calling order, and its timeline."""
    _visible_visit(session, user, visit_id)
    return _detail(session, visit_id, context.clock())


@router.post(
    "/visits/{visit_id}/assign",
    response_model=VisitDetail,
    responses={
        403: role_refused("visitor"),
        404: _NOT_FOUND,
        409: _CONFLICT,
        422: problem(
            "The assignee may not make this visit.", "wang_grid cannot visit outside 幸福社区"
        ),
    },
)
def assign_visit(
    visit_id: VisitIdPath,
    body: AssignIn,
    session: DbSession,
    user: VisitArranger,
    context: Context,
) -> VisitDetail:
    """Send a worker: status `assigned`. The assignee must be an active visitor, dispatcher,
    supervisor or admin whose scope covers the elder. Reassigning is allowed."""
    row = _visible_visit(session, user, visit_id)
    _check_goer(session, body.assignee, _elder_of(session, row))
    return _act(
        session,
        context,
        visit_id,
        lambda now: visit_store.assign(
            session,
            visit_id,
            assignee=body.assignee,
            actor=user.username,
            now=now,
            may_override=True,
        ),
    )


@router.post(
    "/visits/{visit_id}/claim",
    response_model=VisitDetail,
    responses={403: _NOT_ASSIGNEE, 404: _NOT_FOUND, 409: _CONFLICT},
)
def claim_visit(
    visit_id: VisitIdPath, session: DbSession, user: VisitReader, context: Context
) -> VisitDetail:
    """Take the visit yourself: status `assigned`, `assignee` you. A visit another worker
    holds: only a dispatcher, supervisor or admin may take it over."""
    _visible_visit(session, user, visit_id)
    return _act(
        session,
        context,
        visit_id,
        lambda now: visit_store.assign(
            session,
            visit_id,
            assignee=user.username,
            actor=user.username,
            now=now,
            may_override=user.role in _OVERRIDERS,
        ),
    )


@router.post(
    "/visits/{visit_id}/cancel",
    response_model=VisitDetail,
    responses={403: role_refused("visitor"), 404: _NOT_FOUND, 409: _CONFLICT},
)
def cancel_visit(
    visit_id: VisitIdPath,
    session: DbSession,
    user: VisitArranger,
    context: Context,
    body: CancelIn | None = None,
) -> VisitDetail:
    """No longer needed: status `cancelled` (the reason on the timeline)."""
    _visible_visit(session, user, visit_id)
    reason = body.reason if body is not None else None
    return _act(
        session,
        context,
        visit_id,
        lambda now: visit_store.cancel(
            session, visit_id, actor=user.username, now=now, reason=reason
        ),
    )


@router.post(
    "/visits/{visit_id}/complete",
    response_model=VisitDetail,
    responses={403: _NOT_ASSIGNEE, 404: _NOT_FOUND, 409: _CONFLICT},
)
def complete_visit(
    visit_id: VisitIdPath,
    body: CompleteIn,
    session: DbSession,
    user: VisitReader,
    context: Context,
) -> VisitDetail:
    """The visit was made: status `done` with the outcome (and a note). An open visit is
    taken by whoever completes it; one another worker holds, only a dispatcher, supervisor or
    admin may complete (an outcome phoned in). `needed_help` raises a `visit_needed_help`
    alert (welfare, high) for the elder, in the same transaction; its id is on the timeline
    (`raised_alert_id`)."""
    _visible_visit(session, user, visit_id)
    return _act(
        session,
        context,
        visit_id,
        lambda now: visit_store.complete(
            session,
            visit_id,
            outcome=body.outcome,
            note=body.note,
            actor=user.username,
            now=now,
            may_override=user.role in _OVERRIDERS,
        ),
    )


@router.get(
    "/elders/{elder_id}/visits",
    response_model=ElderVisits,
    responses={
        403: _REFUSED,
        404: problem("No such elder, or not within your scope.", "elder not found"),
    },
)
def elder_visits(
    elder_id: ElderId, session: DbSession, user: VisitReader, context: Context
) -> ElderVisits:
    """The elder's visits (the latest 200, soonest due first) and the elder's visit timeline:
    every step of every visit, oldest first (the latest 500)."""
    _visible_elder(session, user, elder_id)
    now = context.clock()
    visits = session.scalars(
        select(VisitRow)
        .where(VisitRow.elder_id == elder_id)
        .order_by(VisitRow.id.desc())
        .limit(200)
    )
    rows = sorted(visits, key=lambda v: (v.due_at, v.id))
    return ElderVisits(
        elder_id=elder_id,
        visits=[visit_view(session, row, now) for row in rows],
        timeline=[_event(e) for e in visit_store.elder_visit_timeline(session, elder_id)],
    )


# Views and helpers.


def visit_view(session: Session, row: VisitRow, now: datetime) -> VisitOut:
    elder = _elder_of(session, row)
    alert = session.get(AlertRow, row.alert_id) if row.alert_id is not None else None
    status_ = VisitStatus(row.status)
    return VisitOut(
        id=row.id,
        elder_id=row.elder_id,
        reason=VisitReason(row.reason),
        alert_id=row.alert_id,
        alert_type=alert.type if alert is not None else None,
        assignee=row.assignee,
        status=status_,
        due_at=row.due_at,
        overdue=status_ in (VisitStatus.OPEN, VisitStatus.ASSIGNED) and row.due_at < now,
        outcome=VisitOutcome(row.outcome) if row.outcome else None,
        notes=row.notes,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        assigned_at=row.assigned_at,
        done_at=row.done_at,
        escalated_at=row.escalated_at,
        elder=VisitElder(
            id=elder.id,
            name=elder.name,
            phone=elder.phone,
            address=elder.address,
            community=elder.community,
            categories=list(elder.categories or []),
            key_safe_note=elder.key_safe_note,
            contacts=[VisitContact.model_validate(c) for c in elder.contacts],
        ),
    )


def _event(row: VisitEventRow) -> VisitEventOut:
    return VisitEventOut.model_validate(row)


def _detail(session: Session, visit_id: int, now: datetime) -> VisitDetail:
    row = visit_store.load(session, visit_id)
    view = visit_view(session, row, now)
    timeline = [_event(e) for e in visit_store.visit_timeline(session, visit_id)]
    return VisitDetail(**view.model_dump(), timeline=timeline)


def _act(
    session: Session,
    context: ApiContext,
    visit_id: int,
    action: Callable[[datetime], VisitResult],
) -> VisitDetail:
    """The step in one transaction, commit; then a raised alert goes to the change feed."""
    now = context.clock()
    try:
        result = action(now)
        session.commit()
    except VisitError as exc:
        raise _http(exc) from exc
    if result.alert_change is not None:
        # The feed's queues belong to the event loop; this route runs on a worker thread.
        anyio.from_thread.run_sync(context.feed.publish, [result.alert_change])
    return _detail(session, visit_id, now)


def _http(exc: VisitError) -> HTTPException:
    if isinstance(exc, VisitNotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail="visit not found")
    if isinstance(exc, NotAssignee):
        return HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc))
    if isinstance(exc, VisitConflict):
        return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))


def _visible_elder(session: Session, user: Principal, elder_id: int) -> ElderRow:
    elder = session.get(ElderRow, elder_id)
    if elder is None or not in_scope(elder.community, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="elder not found")
    return elder


def _visible_visit(session: Session, user: Principal, visit_id: int) -> VisitRow:
    row = session.get(VisitRow, visit_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="visit not found")
    elder = session.get(ElderRow, row.elder_id)
    if elder is None or not in_scope(elder.community, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="visit not found")
    return row


def _elder_of(session: Session, row: VisitRow) -> ElderRow:
    elder = session.get(ElderRow, row.elder_id)
    if elder is None:  # a foreign key with a cascade: deleted meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="visit not found")
    return elder


def _check_goer(session: Session, username: str, elder: ElderRow) -> None:
    """422 unless ``username`` is an active user who may go, whose scope covers the elder."""
    goer = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
    if goer is None or not goer.active:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"no active user {username}"
        )
    if goer.role not in _GOERS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{username} is an {goer.role}: not one who makes visits",
        )
    if not in_scope(elder.community, goer.scope):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{username} cannot visit outside {goer.scope}",
        )


def _utc(moment: datetime) -> datetime:
    """Without an offset: UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
