"""The platform's own outages, and how much of a device's silence they explain.

Principle 5: the platform's outage is not the elders' emergency. A device could not be heard
while ingest was down or cut off from the broker, so that time does not count as its silence:
its deadline moves by the outage. Pure: intervals in, seconds out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(kw_only=True, slots=True)
class Outages:
    """Intervals when the platform was not listening; ``down_since`` while it still is not."""

    intervals: list[tuple[datetime, datetime]] = field(default_factory=list)
    down_since: datetime | None = None

    def went_down(self, at: datetime) -> None:
        if self.down_since is None:
            self.down_since = at

    def came_back(self, at: datetime) -> None:
        if self.down_since is not None:
            if at > self.down_since:
                self.intervals.append((self.down_since, at))
            self.down_since = None

    def add(self, start: datetime, end: datetime) -> None:
        if end > start:
            self.intervals.append((start, end))

    def overlap(self, start: datetime, end: datetime) -> timedelta:
        """How much of [start, end) the platform was away."""
        total = timedelta()
        spans = list(self.intervals)
        if self.down_since is not None:
            spans.append((self.down_since, end))
        for a, b in spans:
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += hi - lo
        return total

    def forget_before(self, moment: datetime) -> None:
        """Intervals that ended before ``moment`` can no longer matter."""
        self.intervals = [(a, b) for a, b in self.intervals if b > moment]


def silence_deadline(
    last_heard: datetime, window: timedelta, outages: Outages, now: datetime
) -> datetime | None:
    """When the device counts as silent, given what is known at ``now``; None while the
    platform is down (nobody can tell a silent device from a deaf platform)."""
    if outages.down_since is not None:
        return None
    return last_heard + window + outages.overlap(last_heard, now)
