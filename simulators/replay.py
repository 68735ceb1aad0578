"""Replay in virtual time: a traffic file straight through ingest's own pipeline and the
scheduler, on a clock that follows the traffic, into a throwaway SQL store.

The same code as live runs: ``MessageDecoder`` decodes, the rules engine decides, the alert
store's functions write alerts, ``Scheduler.step`` fires the time rules, and ingest's pulse is
written as ``anxin ingest`` writes it (every 15 s while the link is up), so the outage guard
sees the same outages. The clock differs: it is moved to each batch's last message, and to each
scheduler tick, instead of being read from the wall.

By default the batches go through ``MemoryIngest`` (simulators/replay_store.py): what the engine
reads between batches is kept in memory, sightings, deadlines and dead letters are written in
bulk before a scheduler pass, and a pass runs only at the ticks where something may be due (a
device's silence, a deadline): at the others it would read, fire and write nothing. With
``in_memory=False`` every batch goes through ``IngestPipeline`` and every tick runs a pass, as
live: the path the memory one is checked against (tests/integration/test_replay_store.py).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from alerting.deadlines import DeadlineRow
from alerting.engine import RulesEngine
from alerting.platform import INGEST, PulseRow, beat
from alerting.scheduler import Scheduler
from alerting.store import AlertRow
from devices.catalogue import Catalogue
from devices.elders import ElderRow
from devices.registry import DeviceRow, DeviceStatus
from devices.topics import parse_uplink
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from simulators.replay_store import MemoryIngest
from simulators.traffic import LinkChange, TrafficLine, TrafficMessage
from simulators.virtual_clock import VirtualClock

# The scheduler of `anxin serve` looks every 5 s. Virtual time goes by in steps of 60 s by
# default: messages are stored in one batch per step (so an alert's created_at is at most a
# step after its message) and the scheduler runs once per step; a day is 1,440 of each rather
# than 17,280 (`--tick 5s` for the live cadence).
DEFAULT_TICK = timedelta(seconds=60)
_CHUNK = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(kw_only=True, slots=True)
class ReplayReport:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0
    links: int = 0
    batches: int = 0
    ticks: int = 0
    # Scheduler passes run: every tick, or (in memory) those where something may be due.
    passes: int = 0
    devices_copied: int = 0
    first: datetime | None = None
    last: datetime | None = None
    wall_s: float = 0.0


def alert_json(row: AlertRow) -> dict[str, Any]:
    """An alert as `anxin replay --json` prints it (contract §3)."""

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {
        "id": row.id,
        "device_id": row.device_id,
        "elder_id": row.elder_id,
        "type": row.type,
        "category": row.category,
        "priority": row.priority,
        "status": row.status,
        "count": row.count,
        "created_at": when(row.created_at),
        "occurred_at": when(row.occurred_at),
        "last_occurred_at": when(row.last_occurred_at),
        "resolved_at": when(row.resolved_at),
    }


def alerts_since(sessions: sessionmaker[Session], after_id: int = 0) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.scalars(select(AlertRow).where(AlertRow.id > after_id).order_by(AlertRow.id))
        return [alert_json(row) for row in rows]


def named_devices(topics: Iterable[str], decoder: MessageDecoder) -> tuple[set[str], set[str]]:
    """Device ids and Zigbee2MQTT friendly names the topics speak of."""
    ids: set[str] = set()
    others = []
    for topic in dict.fromkeys(topics):  # each topic once: a fleet repeats a few thousand
        parsed = parse_uplink(topic, decoder.prefix)
        if parsed is not None:
            ids.add(parsed.device_id)
        else:
            others.append(_delivery(TrafficMessage(time=_EPOCH, topic=topic, payload=b""), 0))
    return ids, decoder.zigbee_names(others)


def copy_registry(
    source: sessionmaker[Session],
    target: sessionmaker[Session],
    device_ids: set[str],
    zigbee_names: set[str],
    registered_at: datetime,
) -> int:
    """The registered devices the traffic names, and their elders, into the replay's store,
    as if registered at ``registered_at`` and never heard from."""
    devices: list[dict[str, Any]] = []
    elders: list[dict[str, Any]] = []
    device_table: Table = DeviceRow.__table__  # type: ignore[assignment]
    elder_table: Table = ElderRow.__table__  # type: ignore[assignment]
    with source() as session:
        for column, wanted in (
            (device_table.c.id, device_ids),
            (device_table.c.zigbee_name, zigbee_names),
        ):
            values = sorted(wanted)
            for start in range(0, len(values), _CHUNK):
                query = select(device_table).where(column.in_(values[start : start + _CHUNK]))
                devices += [dict(row) for row in session.execute(query).mappings()]
        unique = {row["id"]: row for row in devices}
        elder_ids = sorted({row["elder_id"] for row in unique.values() if row["elder_id"]})
        for start in range(0, len(elder_ids), _CHUNK):
            query = select(elder_table).where(
                elder_table.c.id.in_(elder_ids[start : start + _CHUNK])
            )
            elders += [dict(row) for row in session.execute(query).mappings()]
    for row in unique.values():
        row.update(last_seen_at=None, online=None, battery=None, created_at=registered_at)
    with target.begin() as session:
        if elders:
            session.execute(insert(elder_table), elders)
        if unique:
            session.execute(insert(device_table), list(unique.values()))
    return len(unique)


class VirtualReplay:
    """Feeds traffic to the pipeline and ticks the scheduler, in the traffic's own time."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        decoder: MessageDecoder,
        engine: RulesEngine,
        catalogue: Catalogue,
        start: datetime,
        tick: timedelta = DEFAULT_TICK,
        max_batch: int = 1000,
        in_memory: bool = True,
    ) -> None:
        self.clock = VirtualClock(start)
        self._sessions = sessions
        self._pipeline: IngestPipeline | None = None
        self._memory: MemoryIngest | None = None
        if in_memory:
            self._memory = MemoryIngest(
                sessions=sessions, decoder=decoder, engine=engine, clock=self.clock
            )
        else:
            # Nobody edits the replay's registry while it runs (it is copied before), so the
            # registry cache need not re-read it every 10 s of virtual time, i.e. at every batch.
            self._pipeline = IngestPipeline(
                sessions=sessions,
                decoder=decoder,
                engine=engine,
                clock=self.clock,
                registry_ttl=timedelta.max,
                # No InfluxDB in a virtual replay: what it checks is the alerts, so the
                # heartbeats' and telemetry's points are not made at all.
                telemetry_points=False,
            )
        self._scheduler = Scheduler(
            sessions=sessions, engine=engine, catalogue=catalogue, clock=self.clock
        )
        # The link-supervision window of each device the scheduler watches (active, of a
        # known model), to tell it of sightings held in memory before it reads them.
        self._windows: dict[str, timedelta] = {}
        with sessions() as session:
            for device_id, model_name, status in session.execute(
                select(DeviceRow.id, DeviceRow.model, DeviceRow.status)
            ):
                model = catalogue.get(model_name)
                if model is not None and status == DeviceStatus.ACTIVE.value:
                    self._windows[sys.intern(device_id)] = timedelta(seconds=model.offline_after_s)
        self._deadline_due: datetime | None = None  # the earliest in SQL after the last pass
        # Sightings of watched devices not told to the supervisor yet, and its last answer to
        # "when is the earliest silence due?" (None: none watched), if still good: such a
        # sighting only moves its device's deadline later, so the answer stays a bound.
        self._untold: dict[str, datetime] = {}
        self._silence_due: datetime | None = None
        self._silence_asked = False
        self._pulse_held: datetime | None = None
        self._tick, self._max_batch = tick, max_batch
        self._next_tick = start
        self._batch: list[Delivery] = []
        self._link_up = True
        # Pulses written since the link last came up: the next one only moves the time.
        self._listening = False
        self._engine: Engine = sessions.kw["bind"]
        self.report = ReplayReport(first=start)

    def run(self, lines: Iterable[TrafficLine]) -> ReplayReport:
        started = time.perf_counter()
        # What lives for the whole run (the modules, SQLAlchemy's and pydantic's machinery,
        # the registry: ~180,000 objects) left out of the collector's passes, which would
        # scan it again at each full one while the run makes and drops a few objects per
        # message: a sixth of the time.
        gc.freeze()
        try:
            return self._run(lines, started)
        finally:
            gc.unfreeze()

    def _run(self, lines: Iterable[TrafficLine], started: float) -> ReplayReport:
        report = self.report
        for line in lines:
            if self._next_tick <= line.time:  # a tick every ~80 lines of day_1000, at 60 s
                self._ticks_until(line.time)
            if isinstance(line, LinkChange):
                self._link(line)
                continue
            batch = self._batch
            batch.append(_delivery(line, report.messages))
            report.messages += 1
            report.last = line.time
            if len(batch) >= self._max_batch:
                self._flush()
        self._flush()
        if self.report.last is not None:
            self._ticks_until(self.report.last + timedelta(microseconds=1))
        self._sync()
        self.report.alerts = alerts_since(self._sessions)
        self.report.wall_s = time.perf_counter() - started
        return self.report

    def _ticks_until(self, moment: datetime) -> None:
        """Run the scheduler ticks due before ``moment``, after the messages before them."""
        while self._next_tick <= moment:
            if self._batch and self._batch[0].received_at < self._next_tick:
                self._flush()
            self.clock.advance_to(self._next_tick)
            if self._link_up:
                self._beat(self._next_tick)
            self._step(self._next_tick)
            self.report.ticks += 1
            self._next_tick += self._tick

    def _step(self, now: datetime) -> None:
        memory = self._memory
        if memory is not None:
            if not self._may_fire(memory, now):
                return  # it would read, fire and write nothing
            self._sync()
        changes = self._scheduler.step()
        self.report.passes += 1
        self._silence_asked = False  # the pass watched, moved and reported devices
        if memory is not None:
            memory.changed(changes, now)
            with self._sessions() as session:
                self._deadline_due = session.scalar(select(func.min(DeadlineRow.due_at)))

    def _may_fire(self, memory: MemoryIngest, now: datetime) -> bool:
        """Is a device's silence or a deadline due by ``now``, as far as the scheduler could
        tell? Both bounds are never later than the real ones (outages only move deadlines
        later), so a tick found with nothing due is one where a pass does nothing; the next
        pass reads what it would have (the devices heard from since, by watermark)."""
        if self.report.passes == 0:
            return True  # the first pass reads the whole registry
        self._hear(memory.take_heard())
        deadline = any(
            moment is not None and moment <= now for moment in (self._deadline_due, memory.held_due)
        )
        silence = self._silence_due
        if not deadline and self._silence_asked and (silence is None or now < silence):
            return False  # the bound stands: the sightings since can only move it later
        self._ask_supervisor()
        silence = self._silence_due
        return deadline or (silence is not None and silence <= now)

    def _hear(self, heard: dict[str, datetime]) -> None:
        """Sightings, as the next pass will read them from the rows synced by then: a device
        not watched (new, or reported silent) is watched at once, as its deadline may be the
        earliest; one watched is told only when the supervisor is asked (``_ask_supervisor``),
        which saves telling it of every heartbeat."""
        supervisor = self._scheduler.supervisor
        for device_id, at in heard.items():
            window = self._windows.get(device_id)
            if window is None:
                continue
            if device_id in supervisor:
                self._untold[device_id] = at
            else:
                supervisor.watch(device_id, at, window)
                self._silence_asked = False

    def _ask_supervisor(self) -> None:
        supervisor = self._scheduler.supervisor
        for device_id, at in self._untold.items():
            supervisor.watch(device_id, at, self._windows[device_id])
        self._untold.clear()
        self._silence_due, self._silence_asked = supervisor.next_due(), True

    def _sync(self) -> None:
        """What the memory path holds, into SQL: before a pass reads it, and at the end."""
        if self._memory is None:
            return
        with self._sessions.begin() as session:
            self._memory.sync(session)
        self._write_pulse()

    def _link(self, change: LinkChange) -> None:
        self._flush()
        self.report.links += 1
        if not change.up and self._link_up:
            self._beat(change.time)  # the last pulse before the outage
        self._link_up, self._listening = change.up, False
        if change.up:
            self._beat(change.time)  # after the gap: ``beat`` records the outage

    def _beat(self, moment: datetime) -> None:
        """Ingest's pulse, as `anxin ingest` writes it while connected. The scheduler reads it
        only when it steps, so it is written at each tick rather than every 15 s: the same
        outages. While the link stays up a single UPDATE moves it; after a gap, ``beat``
        records the outage."""
        self.clock.advance_to(moment)
        if self._listening:
            self._pulse_held = moment
            if self._memory is None:
                self._write_pulse()
            return
        self._write_pulse()  # ``beat`` compares with the last one
        with self._sessions.begin() as session:
            beat(session, moment)
        self._listening = True

    def _write_pulse(self) -> None:
        """The pulse moved while listening (memory: held until a pass reads it)."""
        if self._pulse_held is None:
            return
        with self._engine.begin() as connection:
            connection.execute(
                update(PulseRow.__table__)  # type: ignore[arg-type]
                .where(PulseRow.__table__.c.name == INGEST)
                .values(at=self._pulse_held)
            )
        self._pulse_held = None

    def _flush(self) -> None:
        if not self._batch:
            return
        self.clock.advance_to(self._batch[-1].received_at)
        if self._memory is not None:
            self._memory.store(self._batch)
        elif self._pipeline is not None:
            self._pipeline.store(self._batch)
        self.report.batches += 1
        self._batch = []


def _delivery(line: TrafficMessage, number: int) -> Delivery:
    return Delivery(
        topic=line.topic,
        payload=line.payload,
        qos=min(line.qos, 1),
        retain=line.retain,
        mid=number,
        connection=0,
        received_at=line.time,
    )


def first_time(lines: Sequence[TrafficLine]) -> datetime | None:
    return min((line.time for line in lines), default=None)
