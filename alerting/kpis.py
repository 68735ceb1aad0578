"""The hotline's key figures over a time window: how fast alerts are claimed, what they were,
how they ended, and how much of the fleet is online.

Counting and grouping happen in SQL. Times to claim are fetched as pairs of timestamps (the
alert's ``created_at`` and its first ``claimed`` timeline entry: a release and a re-claim do not
reset the clock) and subtracted here, so that the figures are the same on SQLite and
PostgreSQL; the percentiles interpolate linearly between ranks, as PostgreSQL's
``percentile_cont`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVarTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from alerting.model import OPEN_STATUSES, AlertStatus
from alerting.store import AlertEventRow, AlertRow
from devices.elders import ElderRow, within_community
from devices.registry import DeviceRow, DeviceStatus

# Outcome keys for alerts that have no dispatcher's outcome.
STILL_OPEN = "open"
CANCELLED = "cancelled"
AUTO_RESOLVED = "auto_resolved"

_Columns = TypeVarTuple("_Columns")


@dataclass(frozen=True, kw_only=True, slots=True)
class Kpis:
    start: datetime
    end: datetime
    alerts: int
    claimed: int
    time_to_claim_p50_s: float | None
    time_to_claim_p90_s: float | None
    claimed_within_60s: float | None
    claimed_within_180s: float | None
    by_type: dict[str, int]
    by_outcome: dict[str, int]
    devices_active: int
    devices_online: int
    devices_online_share: float | None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (``percentile_cont``); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def compute_kpis(session: Session, start: datetime, end: datetime, scope: str = "") -> Kpis:
    """Alerts created in ``[start, end)``, and the devices as they are now, within ``scope``
    (a community tier path; "" for all)."""

    def scoped_alerts(query: Select[*_Columns]) -> Select[*_Columns]:
        query = query.where(AlertRow.created_at >= start, AlertRow.created_at < end)
        if scope:
            query = query.join(ElderRow, ElderRow.id == AlertRow.elder_id).where(
                within_community(scope)
            )
        return query

    by_type = {
        kind: n
        for kind, n in session.execute(
            scoped_alerts(select(AlertRow.type, func.count())).group_by(AlertRow.type)
        )
    }
    by_outcome: dict[str, int] = {}
    for status, outcome, n in session.execute(
        scoped_alerts(select(AlertRow.status, AlertRow.outcome, func.count())).group_by(
            AlertRow.status, AlertRow.outcome
        )
    ):
        key = _outcome_key(AlertStatus(status), outcome)
        by_outcome[key] = by_outcome.get(key, 0) + n
    alerts = sum(by_type.values())

    first_claim = (
        select(AlertEventRow.alert_id, func.min(AlertEventRow.at).label("at"))
        .where(AlertEventRow.action == "claimed")
        .group_by(AlertEventRow.alert_id)
        .subquery()
    )
    waits = [
        (claimed_at - created_at).total_seconds()
        for created_at, claimed_at in session.execute(
            scoped_alerts(
                select(AlertRow.created_at, first_claim.c.at).join(
                    first_claim, first_claim.c.alert_id == AlertRow.id
                )
            )
        )
    ]

    def share_within(seconds: int) -> float | None:
        # Of every alert created in the window: one never claimed was not claimed in time.
        return sum(1 for w in waits if w <= seconds) / alerts if alerts else None

    devices = select(func.count(), func.count().filter(DeviceRow.online.is_(True))).where(
        DeviceRow.status == DeviceStatus.ACTIVE.value
    )
    if scope:
        devices = devices.join(ElderRow, ElderRow.id == DeviceRow.elder_id).where(
            within_community(scope)
        )
    active, online = session.execute(devices).one()
    return Kpis(
        start=start,
        end=end,
        alerts=alerts,
        claimed=len(waits),
        time_to_claim_p50_s=percentile(waits, 0.5),
        time_to_claim_p90_s=percentile(waits, 0.9),
        claimed_within_60s=share_within(60),
        claimed_within_180s=share_within(180),
        by_type=dict(sorted(by_type.items())),
        by_outcome=dict(sorted(by_outcome.items())),
        devices_active=active,
        devices_online=online,
        devices_online_share=online / active if active else None,
    )


def _outcome_key(status: AlertStatus, outcome: str | None) -> str:
    if outcome is not None:
        return outcome
    if status in OPEN_STATUSES:
        return STILL_OPEN
    return CANCELLED if status is AlertStatus.CANCELLED else AUTO_RESOLVED
