"""``/api/v1/stats``: the hotline's key figures, for supervisors and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from alerting.kpis import compute_kpis
from alerting.visit_kpis import visit_kpis
from api.deps import Context, DbSession, require_role
from api.params import Moment
from api.problems import problem
from api.tokens import Principal
from api.users import Role

router = APIRouter(prefix="/api/v1/stats", tags=["stats"])

Overseer = Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))]

DEFAULT_WINDOW = timedelta(days=1)
MAX_WINDOW = timedelta(days=366)


class KpisOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-21T00:00:00Z",
                    "to": "2026-11-22T00:00:00Z",
                    "scope": "张家口市/张北县",
                    "alerts": 40,
                    "claimed": 36,
                    "time_to_claim_p50_s": 21.5,
                    "time_to_claim_p90_s": 95.0,
                    "claimed_within_60s": 0.7,
                    "claimed_within_180s": 0.875,
                    "by_type": {"device_offline": 10, "fall": 4, "sos": 26},
                    "by_outcome": {
                        "auto_resolved": 3,
                        "false_alarm": 12,
                        "open": 2,
                        "resolved_by_phone": 23,
                    },
                    "devices_active": 1200,
                    "devices_online": 1188,
                    "devices_online_share": 0.99,
                }
            ]
        }
    )

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    scope: str = Field(description="The caller's community scope; empty: everything.")
    alerts: int = Field(description="Alerts created in the window.")
    claimed: int = Field(description="Of those, claimed at least once.")
    time_to_claim_p50_s: float | None = Field(
        description="Median seconds from creation to the first claim, of the claimed ones."
    )
    time_to_claim_p90_s: float | None
    claimed_within_60s: float | None = Field(
        description="Share (0–1) of the window's alerts first claimed within 60 s of creation; "
        "one never claimed counts as not within. Null without alerts."
    )
    claimed_within_180s: float | None
    by_type: dict[str, int]
    by_outcome: dict[str, int] = Field(
        description="The resolve outcomes, plus `open` (not closed yet), `cancelled` (by the "
        "device) and `auto_resolved` (by the system)."
    )
    devices_active: int = Field(description="Active devices now (not in maintenance or retired).")
    devices_online: int
    devices_online_share: float | None


@router.get(
    "/kpis",
    response_model=KpisOut,
    response_model_by_alias=True,
    responses={
        403: problem("Only supervisors and admins.", "the dispatcher role may not do this"),
        422: problem("A bad window.", "from must be before to"),
    },
)
def read_kpis(
    session: DbSession,
    user: Overseer,
    context: Context,
    from_: Annotated[
        Moment | None,
        Query(
            alias="from",
            description="Start (RFC 3339; without an offset: UTC). Default: to − 24 h.",
        ),
    ] = None,
    to: Annotated[
        Moment | None, Query(description="End, exclusive (RFC 3339). Default: now.")
    ] = None,
) -> KpisOut:
    """Key figures of the alerts created in `[from, to)` within your scope: time to the first
    claim (median and 90th percentile, seconds), the share claimed within 60 s and 180 s, the
    alerts by type and by outcome; and the share of active devices online now."""
    start, end = _window(context.clock(), from_, to, DEFAULT_WINDOW)
    kpis = compute_kpis(session, start, end, user.scope)
    return KpisOut.model_validate(
        {
            "from": kpis.start,
            "to": kpis.end,
            "scope": user.scope,
            "alerts": kpis.alerts,
            "claimed": kpis.claimed,
            "time_to_claim_p50_s": kpis.time_to_claim_p50_s,
            "time_to_claim_p90_s": kpis.time_to_claim_p90_s,
            "claimed_within_60s": kpis.claimed_within_60s,
            "claimed_within_180s": kpis.claimed_within_180s,
            "by_type": kpis.by_type,
            "by_outcome": kpis.by_outcome,
            "devices_active": kpis.devices_active,
            "devices_online": kpis.devices_online,
            "devices_online_share": kpis.devices_online_share,
        }
    )


def _window(
    now: datetime, from_: datetime | None, to: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    end = _utc(to) if to is not None else now
    start = _utc(from_) if from_ is not None else end - default
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="from must be before to")
    if end - start > MAX_WINDOW:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the window is at most 366 days"
        )
    return start, end


class VisitFiguresOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    community: str = Field(description="The elder's community, as the registry has it.")
    month: str = Field(description="YYYY-MM of the visits' due time, in China Standard Time.")
    visits: int = Field(description="Visits due in the month.")
    done: int
    overdue: int = Field(description="Done after the due time, or still open past it now.")
    cancelled: int
    open: int = Field(description="Not done yet (open or assigned).")
    request_to_visit_p50_s: float | None = Field(
        description="Median seconds from a done visit's request to its completion."
    )
    request_to_visit_p90_s: float | None


class VisitKpisOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "2026-11-01T00:00:00Z",
                    "to": "2026-12-01T00:00:00Z",
                    "scope": "张家口市/张北县",
                    "items": [
                        {
                            "community": "张家口市/张北县/花园街道/幸福社区",
                            "month": "2026-11",
                            "visits": 42,
                            "done": 38,
                            "overdue": 3,
                            "cancelled": 1,
                            "open": 3,
                            "request_to_visit_p50_s": 14400.0,
                            "request_to_visit_p90_s": 80000.0,
                        }
                    ],
                }
            ]
        }
    )

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    scope: str
    items: list[VisitFiguresOut]


@router.get(
    "/visits",
    response_model=VisitKpisOut,
    response_model_by_alias=True,
    responses={
        403: problem("Only supervisors and admins.", "the dispatcher role may not do this"),
        422: problem("A bad window.", "from must be before to"),
    },
)
def read_visit_kpis(
    session: DbSession,
    user: Overseer,
    context: Context,
    from_: Annotated[
        Moment | None,
        Query(alias="from", description="Start of the due times (RFC 3339). Default: to − 31 d."),
    ] = None,
    to: Annotated[Moment | None, Query(description="End, exclusive. Default: now.")] = None,
) -> VisitKpisOut:
    """Home visits due in `[from, to)` within your scope, per community and per month: done,
    overdue, cancelled, still open, and the time from request to visit (median, 90th
    percentile)."""
    now = context.clock()
    start, end = _window(now, from_, to, timedelta(days=31))
    rows = visit_kpis(session, start, end, now, user.scope)
    return VisitKpisOut.model_validate(
        {
            "from": start,
            "to": end,
            "scope": user.scope,
            "items": [VisitFiguresOut.model_validate(r) for r in rows],
        }
    )


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
