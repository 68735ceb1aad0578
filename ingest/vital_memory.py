"""Vital signs out of range in a row per device, for the [vitals] rule: bounded in memory.

The rule counts readings in a row, the first and the last ``sustained_s`` apart, so a run
must outlive the gap between a watch's readings; a device never heard from again must not
keep its run for ever (issue 17). A run not added to for ``idle`` is forgotten, and beyond
``limit`` devices the least recently added to is: the device's next reading out of range
starts a new run, as after a restart (an alert a few readings later, never a lost one).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta

from alerting.engine import VitalRun
from devices.clock import Clock
from ingest import metrics

# Longer than any watch's interval between readings; twice the rule's span if it is longer.
VITAL_RUNS_IDLE = timedelta(hours=1)
# A city's fleet of watches with a run at once is far fewer.
VITAL_RUNS_LIMIT = 100_000


def idle_for(sustained_s: int) -> timedelta:
    """How long a run waits for its next reading: an hour, or twice the rule's span."""
    return max(VITAL_RUNS_IDLE, 2 * timedelta(seconds=sustained_s))


class VitalMemory:
    """Each device's runs, the least recently added to first."""

    def __init__(
        self, clock: Clock, *, idle: timedelta = VITAL_RUNS_IDLE, limit: int = VITAL_RUNS_LIMIT
    ) -> None:
        self._clock, self._idle, self._limit = clock, idle, limit
        self._runs: OrderedDict[str, tuple[Mapping[str, VitalRun], datetime]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, device_id: str) -> bool:
        return device_id in self._runs

    def get(self, device_id: str) -> Mapping[str, VitalRun]:
        kept = self._runs.get(device_id)
        if kept is None or self._clock() - kept[1] >= self._idle:
            return {}
        return kept[0]

    def keep(self, committed: Mapping[str, Mapping[str, VitalRun]]) -> None:
        """Call once the batch is committed: its devices' runs (empty: back in range)."""
        now = self._clock()
        for device_id, vitals in committed.items():
            if vitals:
                self._runs[device_id] = (vitals, now)
                self._runs.move_to_end(device_id)
            else:
                self._runs.pop(device_id, None)
        self._forget(now)

    def _forget(self, now: datetime) -> None:
        while self._runs:
            device_id, (_, added) = next(iter(self._runs.items()))
            if now - added >= self._idle:
                reason = "idle"
            elif len(self._runs) > self._limit:
                reason = "limit"
            else:
                break
            del self._runs[device_id]
            metrics.VITAL_RUNS_FORGOTTEN.labels(reason).inc()
        metrics.VITAL_RUNS.set(len(self._runs))
