"""The scheduler: time rules fired from what the database says: link supervision
(``device_offline``) with the outage guard, the welfare and periodic-test deadlines
(alerting/welfare_watch.py), and the escalation of unclaimed alerts (alerting/escalation.py).

Its deadlines are derived from stored facts (devices' last-seen times, open alerts), so a
restart rebuilds them and neither loses nor double-fires one: an alert already open is not
raised again. Silence while the platform was not listening does not count (alerting/platform.py
records the outages, alerting/outages.py does the arithmetic).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from alerting import metrics
from alerting.engine import RulesEngine, device_silent
from alerting.escalation import Escalator
from alerting.feed import AlertFeed
from alerting.model import OPEN_STATUSES, AlertType
from alerting.platform import load_outages
from alerting.store import AlertChange, AlertRow, raise_or_coalesce
from alerting.supervision import LinkSupervisor
from alerting.visit_planner import VisitPlanner
from alerting.welfare_watch import WelfareWatch
from devices.catalogue import Catalogue
from devices.clock import Clock
from devices.registry import DeviceRow, DeviceStatus, find_devices

log = structlog.get_logger(__name__)

# The shortest wait between passes: deadlines a few ms apart are met by one pass.
MIN_WAIT_S = 0.05
# Rows fetched at a time when the devices heard from are read.
READ_ROWS = 1000


class Scheduler:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        engine: RulesEngine,
        catalogue: Catalogue,
        clock: Clock,
        feed: AlertFeed | None = None,
        escalator: Escalator | None = None,
        visits: VisitPlanner | None = None,
    ) -> None:
        self._sessions, self._engine, self._catalogue = sessions, engine, catalogue
        self._clock, self._feed = clock, feed
        # Unclaimed alerts (alerting/escalation.py): in a transaction of its own, so neither
        # part's failure undoes the other's work.
        self._escalator = escalator
        # Home visits (alerting/visit_planner.py): in a transaction of its own too.
        self._visits = visits
        self.supervisor = LinkSupervisor()
        self._rebuilds_counted = 0
        self.welfare = WelfareWatch(engine, catalogue)
        self._watermark: datetime | None = None
        self._down = False  # the platform seemed down at the last pass
        self._windows: dict[str, timedelta] = {}

    def step(self) -> list[AlertChange]:
        """One pass: read pulses and sightings, fire what is due. Synchronous (a thread)."""
        now = self._clock()
        with self._sessions.begin() as session:
            outages = load_outages(session, now)
            self._down = outages.down_since is not None
            self._follow_devices(session)
            changes = [
                change
                for device_id in self.supervisor.due(now, outages)
                if (change := self._device_silent(session, device_id, now)) is not None
            ]
            welfare = self.welfare.step(session, now, outages)
        self._count_supervision()
        for change in changes:
            log.warning("scheduler.device_offline", device_id=change.device_id)
        changes += welfare
        if self._escalator is not None:
            with self._sessions.begin() as session:
                changes += self._escalator.step(session, now)
        if self._visits is not None:
            with self._sessions.begin() as session:
                self._visits.step(session, now)
        return changes

    def _count_supervision(self) -> None:
        supervisor = self.supervisor
        metrics.SUPERVISED_DEVICES.set(len(supervisor))
        metrics.SUPERVISION_QUEUED.set(supervisor.queued)
        if supervisor.rebuilds > self._rebuilds_counted:
            metrics.SUPERVISION_REBUILDS.inc(supervisor.rebuilds - self._rebuilds_counted)
            log.info("scheduler.supervision_heap_rebuilt", entries=supervisor.queued)
            self._rebuilds_counted = supervisor.rebuilds

    async def run(self, stop: asyncio.Event, every_s: float = 5.0) -> None:
        while not stop.is_set():
            try:
                changes = await asyncio.to_thread(self.step)
            except Exception:  # a database gone away must not end the scheduler
                # Nothing of a failed pass is committed; the next one sees the same state.
                log.exception("scheduler.pass_failed")
                changes = []
            if changes and self._feed is not None:
                self._feed.publish(changes)  # on the event loop: the feed is not thread-safe
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._wait_s(every_s))
            except TimeoutError:
                continue

    def _wait_s(self, every_s: float) -> float:
        """Until the next pass: ``every_s``, or sooner for a device due before then, so an
        offline device is reported within a second of its deadline, not up to a pass later."""
        if self._down:
            return every_s  # nothing is reported while the platform is down: its pulse is due
        due = self.supervisor.next_due()
        if due is None:
            return every_s
        return min(every_s, max(MIN_WAIT_S, (due - self._clock()).total_seconds()))

    def _follow_devices(self, session: Session) -> None:
        """Watch every device heard from (or registered) since the last pass."""
        query = select(
            DeviceRow.id,
            DeviceRow.model,
            DeviceRow.status,
            DeviceRow.last_seen_at,
            DeviceRow.created_at,
        )
        if self._watermark is not None:
            query = query.where(
                or_(
                    DeviceRow.last_seen_at >= self._watermark,
                    DeviceRow.created_at >= self._watermark,
                )
            )
        # Streamed: after a restart (or a fleet's round of heartbeats) this is every device, and
        # 100,000 rows fetched at once would raise the process's memory for good (the freed
        # rows leave the allocator's pools fragmented around what is kept).
        rows = session.execute(query.execution_options(yield_per=READ_ROWS))
        for device_id, model_name, status, last_seen, created in rows:
            heard = last_seen or created
            self._watermark = heard if self._watermark is None else max(self._watermark, heard)
            model = self._catalogue.get(model_name)
            if model is None or status != DeviceStatus.ACTIVE.value:
                self.supervisor.forget(device_id)
                continue
            window = self._windows.get(model_name)
            if window is None:  # one per model, not one per device watched
                window = self._windows[model_name] = timedelta(seconds=model.offline_after_s)
            self.supervisor.watch(sys.intern(device_id), heard, window)

    def _device_silent(self, session: Session, device_id: str, now: datetime) -> AlertChange | None:
        row = session.get(DeviceRow, device_id)
        if row is None or row.status != DeviceStatus.ACTIVE.value:
            return None
        already = session.scalar(
            select(AlertRow.id).where(
                AlertRow.device_id == device_id,
                AlertRow.type == AlertType.DEVICE_OFFLINE.value,
                AlertRow.status.in_([s.value for s in OPEN_STATUSES]),
            )
        )
        if already is not None:
            return None  # fired before a restart, still open: not twice
        info = find_devices(session, [device_id])[device_id]
        heard = row.last_seen_at or row.created_at
        row.online = False
        return raise_or_coalesce(session, device_silent(self._engine, info, heard, now), now)
