"""Link supervision: which devices have been silent past their model's window.

A heap of deadlines keyed by device, so the cost of a sighting does not grow with the fleet:
a sighting pushes one entry; stale entries are dropped when they surface. Each watched device
remembers the deadline of its one live entry, so a stale one is told apart without arithmetic
and never pushed again (the heap holds about one entry per sighting of the last window, not
one per sighting ever). Pure: the shell
(alerting/scheduler.py) feeds it what the database says and asks it what is due.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerting.outages import Outages, silence_deadline


@dataclass(frozen=True, kw_only=True, slots=True)
class Watched:
    last_heard: datetime
    window: timedelta
    queued: datetime  # the deadline of its live heap entry


class LinkSupervisor:
    def __init__(self) -> None:
        self._watched: dict[str, Watched] = {}
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, device_id: str, last_heard: datetime, window: timedelta) -> None:
        """The device was heard from at ``last_heard`` (never moves back)."""
        known = self._watched.get(device_id)
        if known is not None and known.last_heard >= last_heard and known.window == window:
            return
        deadline = last_heard + window
        self._watched[device_id] = Watched(last_heard=last_heard, window=window, queued=deadline)
        heapq.heappush(self._heap, (deadline, device_id))

    def forget(self, device_id: str) -> None:
        self._watched.pop(device_id, None)  # its heap entries are skipped when they surface

    def due(self, now: datetime, outages: Outages) -> list[str]:
        """Devices silent past their window at ``now``; each is reported once per silence."""
        if outages.down_since is not None:
            return []
        silent = []
        while self._heap and self._heap[0][0] <= now:
            queued, device_id = heapq.heappop(self._heap)
            watched = self._watched.get(device_id)
            if watched is None or watched.queued != queued:
                continue  # forgotten, or superseded by a newer entry
            deadline = silence_deadline(watched.last_heard, watched.window, outages, now)
            if deadline is None:
                continue
            if deadline > now:
                # A newer sighting or an outage moved it: look again then.
                self._watched[device_id] = Watched(
                    last_heard=watched.last_heard, window=watched.window, queued=deadline
                )
                heapq.heappush(self._heap, (deadline, device_id))
                continue
            silent.append(device_id)
            del self._watched[device_id]  # watched again once heard from
        return silent

    def next_due(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None
