"""Link supervision: which devices have been silent past their model's window.

A heap of deadlines keyed by device, so the cost of a sighting does not grow with the fleet.
Each watched device has one live entry in the heap, at a deadline no later than its real one
(last heard + window): a sighting only moves the device's last-heard time, and when its entry
surfaces, the deadline is worked out again and the entry pushed back if the device was heard
from since. So the heap holds one entry per watched device however often each is heard from
(a sighting pushed an entry each time before: the scheduler's 5 s pass read every chatty
device, 2,000 devices and a 30 min window kept 720,000 entries, ~120 MiB, all of them stale).

Stale entries (a device forgotten, or its deadline moved earlier by a shorter window) are
skipped when they surface; should they outnumber the live ones (``MAX_STALE``), the heap is
rebuilt from the live entries, so its size stays within ``2 × watched + MAX_STALE``. Pure:
the shell (alerting/scheduler.py) feeds it what the database says and asks it what is due.

Times are kept as POSIX seconds (floats, 24 bytes) rather than datetimes (48): two of them
are held for every device of the fleet, and they are only compared. Each float is converted
from a datetime (sums are done on datetimes), and a float's step (0.24 µs here) is finer than
a microsecond, so the floats order exactly as the datetimes do and convert back unchanged.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alerting.outages import Outages, silence_deadline


# Not frozen: one is made per sighting, and a frozen dataclass's __init__ costs three times as
# much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class Watched:
    last_heard: float  # POSIX seconds
    window: timedelta  # one object per model, shared
    queued: float  # the deadline of its live heap entry (never after the real one)

    @property
    def deadline(self) -> float:
        return _seconds(_datetime(self.last_heard) + self.window)


def _seconds(at: datetime) -> float:
    return at.timestamp()


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# Stale heap entries tolerated beyond one per watched device before the heap is rebuilt.
MAX_STALE = 10_000


class LinkSupervisor:
    def __init__(self, max_stale: int = MAX_STALE) -> None:
        self._watched: dict[str, Watched] = {}
        self._heap: list[tuple[float, str]] = []
        self._max_stale = max_stale
        self.rebuilds = 0

    def __len__(self) -> int:
        return len(self._watched)

    def __contains__(self, device_id: str) -> bool:
        return device_id in self._watched

    @property
    def queued(self) -> int:
        """Entries in the heap: one per watched device, and a bounded number of stale ones."""
        return len(self._heap)

    def watch(self, device_id: str, heard_at: datetime, window: timedelta) -> None:
        """The device was heard from at ``heard_at`` (never moves back)."""
        last_heard = _seconds(heard_at)
        known = self._watched.get(device_id)
        if known is not None and known.last_heard >= last_heard and known.window == window:
            return
        deadline = _seconds(heard_at + window)
        if known is not None and known.queued <= deadline:
            # Its live entry surfaces first, and is pushed back to the new deadline then.
            self._watched[device_id] = Watched(
                last_heard=last_heard, window=window, queued=known.queued
            )
            return
        # New, or due earlier than its live entry (a shorter window): that one goes stale.
        self._watched[device_id] = Watched(last_heard=last_heard, window=window, queued=deadline)
        self._push(deadline, device_id)

    def forget(self, device_id: str) -> None:
        self._watched.pop(device_id, None)  # its heap entry is skipped when it surfaces

    def _push(self, deadline: float, device_id: str) -> None:
        heapq.heappush(self._heap, (deadline, device_id))
        if len(self._heap) > 2 * len(self._watched) + self._max_stale:
            # More stale entries than live ones: keep the live ones only (O(watched)).
            self._heap = [(w.queued, d) for d, w in self._watched.items()]
            heapq.heapify(self._heap)
            self.rebuilds += 1

    def due(self, now: datetime, outages: Outages) -> list[str]:
        """Devices silent past their window at ``now``; each is reported once per silence."""
        if outages.down_since is not None:
            return []
        silent = []
        now_s = _seconds(now)
        while self._heap and self._heap[0][0] <= now_s:
            queued, device_id = heapq.heappop(self._heap)
            watched = self._watched.get(device_id)
            if watched is None or watched.queued != queued:
                continue  # forgotten, or superseded by a newer entry
            at = silence_deadline(_datetime(watched.last_heard), watched.window, outages, now)
            if at is None:
                continue
            if at > now:
                # A newer sighting or an outage moved it: look again then.
                deadline = _seconds(at)
                self._watched[device_id] = Watched(
                    last_heard=watched.last_heard, window=watched.window, queued=deadline
                )
                self._push(deadline, device_id)
                continue
            silent.append(device_id)
            del self._watched[device_id]  # watched again once heard from
        return silent

    def next_due(self) -> datetime | None:
        """The earliest deadline as far as the sightings watched tell (outages aside, which
        only move deadlines later): the heap's head once settled. Entries of devices heard
        from since they were queued, and stale ones, are moved or dropped on the way, the
        work ``due`` would do when they surface, done earlier: so the scheduler can wake for
        a deadline rather than at its next 5 s pass."""
        heap = self._heap
        while heap:
            queued, device_id = heap[0]
            watched = self._watched.get(device_id)
            if watched is None or watched.queued != queued:
                heapq.heappop(heap)  # forgotten, or superseded by a newer entry
                continue
            deadline = watched.deadline
            if deadline <= queued:
                return _datetime(queued)
            self._watched[device_id] = Watched(
                last_heard=watched.last_heard, window=watched.window, queued=deadline
            )
            heapq.heapreplace(heap, (deadline, device_id))
        return None
