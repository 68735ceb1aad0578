"""The platform's own pulse and outages, stored so every process (and a restart) sees them.

Ingest beats while it is connected to the broker; a beat that comes after a gap longer than
the timeout records the gap as an outage. The scheduler reads both: silence during an outage
does not count against a device (alerting/outages.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerting.outages import Outages
from devices.sql import Base, UtcDateTime

INGEST = "ingest"
PULSE_EVERY = timedelta(seconds=15)
PULSE_TIMEOUT = timedelta(seconds=45)
REMEMBERED = timedelta(days=8)


class PulseRow(Base):
    """The last time a role said it was working (ingest: connected to the broker)."""

    __tablename__ = "service_pulses"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class OutageRow(Base):
    __tablename__ = "platform_outages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


def beat(session: Session, now: datetime, timeout: timedelta = PULSE_TIMEOUT) -> None:
    """Ingest is listening at ``now``; a gap since its last beat was an outage."""
    row = session.get(PulseRow, INGEST)
    if row is None:
        session.add(PulseRow(name=INGEST, at=now))
        return
    if now - row.at > timeout:
        session.add(OutageRow(started_at=row.at, ended_at=now))
    if now > row.at:
        row.at = now


def load_outages(session: Session, now: datetime, timeout: timedelta = PULSE_TIMEOUT) -> Outages:
    """The outages that can still matter, and whether the platform is down right now."""
    outages = Outages()
    for start, end in session.execute(
        select(OutageRow.started_at, OutageRow.ended_at).where(
            OutageRow.ended_at > now - REMEMBERED
        )
    ):
        outages.add(start, end)
    pulse = session.get(PulseRow, INGEST)
    if pulse is None or now - pulse.at > timeout:
        # Never heard, or not for a while: nobody can tell a silent device from a deaf platform.
        outages.went_down(pulse.at if pulse else now)
    return outages
