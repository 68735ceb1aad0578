"""Home visits' key figures: per community and per month, how many were due, done, overdue and
cancelled, and how long from a visit's request to the visit.

A visit counts in the month (China Standard Time: the whole country keeps one clock) of its due
time. Overdue: done after its due time, or still open past it now. Rows are fetched and grouped
here, so that the figures are the same on SQLite and PostgreSQL (bounded: a window is at most a
year of one scope's visits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.kpis import percentile
from alerting.visit_store import VisitRow
from alerting.visits import OPEN_VISIT_STATUSES, VisitStatus
from devices.elders import ElderRow, within_community

MONTH_ZONE = ZoneInfo("Asia/Shanghai")
_OPEN = {s.value for s in OPEN_VISIT_STATUSES}


@dataclass(kw_only=True, slots=True)
class VisitFigures:
    community: str
    month: str  # YYYY-MM
    visits: int = 0
    done: int = 0
    overdue: int = 0
    cancelled: int = 0
    open: int = 0
    request_to_visit_p50_s: float | None = None
    request_to_visit_p90_s: float | None = None


def visit_kpis(
    session: Session, start: datetime, end: datetime, now: datetime, scope: str = ""
) -> list[VisitFigures]:
    """Visits due in ``[start, end)`` within ``scope``, by community and month, sorted."""
    query = (
        select(
            ElderRow.community,
            VisitRow.status,
            VisitRow.due_at,
            VisitRow.created_at,
            VisitRow.done_at,
        )
        .join(ElderRow, ElderRow.id == VisitRow.elder_id)
        .where(VisitRow.due_at >= start, VisitRow.due_at < end)
    )
    if scope:
        query = query.where(within_community(scope))
    groups: dict[tuple[str, str], VisitFigures] = {}
    waits: dict[tuple[str, str], list[float]] = {}
    for community, status, due_at, created_at, done_at in session.execute(query):
        key = (community or "", due_at.astimezone(MONTH_ZONE).strftime("%Y-%m"))
        figures = groups.setdefault(key, VisitFigures(community=key[0], month=key[1]))
        figures.visits += 1
        if status == VisitStatus.DONE.value:
            figures.done += 1
            if done_at is not None:
                waits.setdefault(key, []).append((done_at - created_at).total_seconds())
                if done_at > due_at:
                    figures.overdue += 1
        elif status == VisitStatus.CANCELLED.value:
            figures.cancelled += 1
        elif status in _OPEN:
            figures.open += 1
            if due_at < now:
                figures.overdue += 1
    for key, figures in groups.items():
        figures.request_to_visit_p50_s = percentile(waits.get(key, []), 0.5)
        figures.request_to_visit_p90_s = percentile(waits.get(key, []), 0.9)
    return [groups[key] for key in sorted(groups)]
