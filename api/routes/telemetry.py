"""A device's telemetry from InfluxDB: ``GET /api/v1/devices/{id}/telemetry``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict

from api.deps import Context, DbSession, Staff
from api.problems import problem, role_refused
from api.routes.devices import visible_device
from ingest.telemetry.ports import StoreUnavailableError

router = APIRouter(prefix="/api/v1/devices", tags=["telemetry"])

_RELATIVE = re.compile(r"^-(\d+)(ms|s|m|h|d|w)$")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
MAX_SPAN = timedelta(days=400)


class TelemetryPointOut(BaseModel):
    time: datetime
    metric: str
    value: float


class TelemetryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "device_id": "watch-0017",
                    "metric": "heart_rate",
                    "start": "2026-11-21T08:00:00Z",
                    "end": "2026-11-22T08:00:00Z",
                    "points": [
                        {"time": "2026-11-22T07:40:00Z", "metric": "heart_rate", "value": 72.0}
                    ],
                }
            ]
        }
    )

    device_id: str
    metric: str | None
    start: datetime
    end: datetime
    points: list[TelemetryPointOut]


def parse_moment(text: str, now: datetime, name: str) -> datetime:
    """``now``, a duration before now (``-24h``, ``-30m``, ``-7d``: ms s m h d w), or an
    RFC 3339 time with an offset."""
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative is not None:
        return now - int(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{name}: {text!r} is not now, -<n><unit> (e.g. -24h) or an RFC 3339 time"
            " with an offset",
        )
    return moment


@router.get(
    "/{device_id}/telemetry",
    response_model=TelemetryOut,
    responses={
        403: role_refused("visitor"),
        404: problem("No such device, or outside your scope.", "device not found"),
        503: problem(
            "No telemetry store configured, or it failed.",
            "no telemetry store is configured (ANXIN_INFLUX_URL is not set)",
        ),
    },
)
def read_telemetry(
    device_id: str,
    session: DbSession,
    user: Staff,
    context: Context,
    metric: Annotated[str | None, Query(max_length=64, examples=["heart_rate"])] = None,
    start: Annotated[str, Query(examples=["-24h"])] = "-24h",
    end: Annotated[str, Query(examples=["now"])] = "now",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> TelemetryOut:
    """(A plain def: FastAPI runs it on a worker thread, off the event loop ingest shares.)

    The device's points, oldest first (the newest ``limit`` of them when there are more):
    every metric, or only ``metric`` (``battery``, ``rssi``, or a telemetry metric name)."""
    # Every role may read telemetry, of the devices in its scope.
    visible_device(session, user, device_id)
    if context.telemetry is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no telemetry store is configured (ANXIN_INFLUX_URL is not set)",
        )
    now = context.clock()
    since, until = parse_moment(start, now, "start"), parse_moment(end, now, "end")
    if since > until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="start is after end")
    if until - since > MAX_SPAN:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="at most 400 days at a time"
        )
    try:
        points = context.telemetry.query(device_id, metric, since, until, limit)
    except StoreUnavailableError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the telemetry store failed: {exc}"
        ) from exc
    return TelemetryOut(
        device_id=device_id,
        metric=metric,
        start=since,
        end=until,
        points=[TelemetryPointOut(time=p.time, metric=p.metric, value=p.value) for p in points],
    )
