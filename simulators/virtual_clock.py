"""A clock that moves only when told: replay and generation run on the traffic's own time."""

from __future__ import annotations

from datetime import datetime


class VirtualClock:
    """A :data:`devices.clock.Clock` (call it for "now") that never moves back."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a virtual clock needs an aware datetime")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance_to(self, moment: datetime) -> None:
        """Move to ``moment``; a moment in the past leaves the clock where it is."""
        if moment > self._now:
            self._now = moment
