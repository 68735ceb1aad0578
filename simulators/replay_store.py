"""The virtual replay's store in memory: what the rules engine reads between batches kept here,
so that a batch costs no SQL unless it changes an alert.

Ingest's pipeline (ingest/pipeline.py) reads, for every batch, the open alerts, recent
occurrences and elders' open welfare alerts of its devices, and writes their sightings,
deadlines and dead letters: some six statements a batch, ~1 ms each of SQLAlchemy and SQLite,
which is most of a virtual replay's time. Here:

- the same decoder decides what the messages are, the same pure engine what they mean, and
  the same throttles and vital-sign memory as the pipeline's are kept;
- the alert decisions are written to SQL at once, with the pipeline's own ``write_alerts``
  (they are rare: a few dozen a day of 1,000 devices), and what the engine reads of those
  devices is read back with the store's own queries, so memory holds what SQL would answer;
- sightings, deadlines and dead letters are held and written in bulk by ``sync``, with the
  same statements, folded so that one write leaves the rows as the batches' writes one by one
  would have. The replay syncs before anything reads them: a scheduler pass, and the end.

Only a replay may use it: it is the one writer of its database, and nobody edits the registry
meanwhile (the registry is read once, at the start).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.deadlines import set_deadlines
from alerting.decisions import (
    DeadlineRule,
    ResolveElderAlert,
    SetDeadline,
)
from alerting.engine import RATE_WINDOW, DeviceState, RulesEngine
from alerting.store import (
    ELDER_ALERTS,
    AlertChange,
    AlertRow,
    open_alerts_of,
    open_elder_alerts,
    recent_occurrences,
)
from devices.clock import Clock
from devices.events import Decoded, Rejected, SensorEvent
from devices.registry import (
    DeviceInfo,
    DeviceRow,
    Sighting,
    find_devices,
    find_zigbee_devices,
    merge_sightings,
    record_sightings,
)
from devices.zigbee2mqtt import ZigbeeDevice, ZigbeeState
from ingest.dead_letters import store_dead_letters
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.pipeline import AlertWrite, BatchResult, sort_decisions, write_alerts
from ingest.registry_cache import DeadlineThrottle, SightingThrottle
from ingest.vital_memory import VitalMemory, idle_for
from ingest.zigbee_memory import recall, remember


class MemoryIngest:
    """Stores batches as IngestPipeline.store_batch does, with the state it reads in memory."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        decoder: MessageDecoder,
        engine: RulesEngine,
        clock: Clock,
    ) -> None:
        self._sessions, self._decoder, self._engine, self._clock = sessions, decoder, engine, clock
        self._sightings = SightingThrottle()
        self._deadlines = DeadlineThrottle()
        self._vitals = VitalMemory(clock, idle=idle_for(engine.rules.vitals.sustained_s))
        with sessions() as session:
            ids = list(session.scalars(select(DeviceRow.id)))
            self._devices: dict[str, DeviceInfo] = find_devices(session, ids)
            self._last_seen: dict[str, datetime | None] = {
                device_id: seen
                for device_id, seen in session.execute(select(DeviceRow.id, DeviceRow.last_seen_at))
            }
            # A fresh database has no alerts; one kept from elsewhere is read as the queries do.
            alerting = sorted(set(session.scalars(select(AlertRow.device_id))))
            self._open = open_alerts_of(session, alerting)
            self._recent = recent_occurrences(session, alerting, clock() - RATE_WINDOW)
            self._elders = sorted({d.elder_id for d in self._devices.values() if d.elder_id})
            self._elder_open = open_elder_alerts(session, self._elders)
        # Held until ``sync``: per device the row's values once every batch's UPDATE is done
        # (its last-seen time, and the battery level and online state last set, if any: one
        # dict each, cheaper to update at every sighting than a Sighting made anew); per
        # deadline the one write that leaves its row as the batches' writes did.
        self._held_seen: dict[str, datetime] = {}
        self._held_battery: dict[str, float] = {}
        self._held_online: dict[str, bool] = {}
        self._held_deadlines: dict[tuple[DeadlineRule, str], SetDeadline] = {}
        self._held_dead: list[Rejected] = []
        # No deadline held is due before this (None: none held).
        self.held_due: datetime | None = None
        # Last-seen times written since ``take_heard``: what the scheduler will read.
        self._heard: dict[str, datetime] = {}
        self._quiet: dict[str, DeviceState] = {}  # see _quiet_state

    # --- a batch ---------------------------------------------------------------------------

    def store(self, deliveries: Sequence[Delivery]) -> None:
        names = self._decoder.zigbee_names(deliveries)
        now = self._clock()
        zigbee: Mapping[str, ZigbeeDevice] = {}
        remembered: Mapping[str, ZigbeeState] = {}
        if names:  # Zigbee2MQTT's state memory stays in SQL (ingest/zigbee_memory.py)
            with self._sessions.begin() as session:
                zigbee = find_zigbee_devices(session, names)
                remembered = recall(session, zigbee, now)
        decoding = self._decoder.decode(deliveries, zigbee, remembered)
        self._decide(list(zip(deliveries, decoding.events, strict=True)), now)
        if names:
            with self._sessions.begin() as session:
                remember(session, decoding.zigbee_states, zigbee, now)
        self._decoder.commit(decoding)

    def _decide(self, batch: Sequence[tuple[Delivery, Sequence[Decoded]]], now: datetime) -> None:
        """IngestPipeline._store's loop: each event to the engine, the decisions sorted out."""
        events = [(d, e) for d, decoded in batch for e in decoded]
        devices: set[str] = set()
        sensing: set[str] = set()
        for _, event in events:  # one pass: a batch is mostly heartbeats
            if isinstance(event, SensorEvent):
                sensing.add(event.device_id)
            elif isinstance(event, Rejected):
                continue
            devices.add(event.device_id)
        states = self._states(devices, sensing, now)
        writes: list[AlertWrite] = []
        sightings: list[Sighting] = []
        deadlines: list[SetDeadline] = []
        for delivery, event in events:
            if isinstance(event, Rejected):
                self._held_dead.append(event)
                continue
            evaluation = self._engine.evaluate(states[event.device_id], event, now)
            states[event.device_id] = evaluation.state
            sort_decisions(
                delivery, event.device_id, evaluation.decisions,
                sightings, deadlines, self._held_dead, writes,
            )  # fmt: skip
        if writes:
            with self._sessions.begin() as session:
                result = BatchResult()
                write_alerts(session, writes, now, result)
                touched = {w.device_id for w in writes if not isinstance(w, ResolveElderAlert)}
                self._read_back(session, touched, result.changes, now, writes)
        chosen = self._sightings.worth_writing(sightings)
        self._hold_sightings(chosen)
        planned = self._deadlines.worth_writing(deadlines)
        self._hold_deadlines(planned)
        # What the pipeline's _committed remembers once the batch is stored.
        self._sightings.written(chosen)
        self._deadlines.written(planned)
        # The devices with runs, or with runs to drop: for the others keep has nothing to do.
        vitals = self._vitals
        vitals.keep({d: state.vitals for d, state in states.items() if state.vitals or d in vitals})

    def _states(
        self, device_ids: set[str], sensing: set[str], now: datetime
    ) -> dict[str, DeviceState]:
        """IngestPipeline._states, from memory: the same answers its queries give."""
        since = now - RATE_WINDOW
        elders = {
            info.elder_id
            for device_id in sensing
            if (info := self._devices.get(device_id)) is not None and info.elder_id is not None
        }
        states = {}
        for device_id in device_ids:
            device = self._devices.get(device_id)
            elder = device.elder_id if device is not None else None
            open_alerts = self._open.get(device_id, {})
            recent = self._recent.get(device_id, ())
            vitals = self._vitals.get(device_id)
            elder_open = self._elder_open.get(elder, ()) if elder in elders else ()
            if not (open_alerts or recent or vitals or elder_open):
                states[device_id] = self._quiet_state(device_id, device)
                continue
            states[device_id] = DeviceState(
                device_id=device_id,
                device=device,
                open_alerts=open_alerts,
                recent=tuple(t for t in recent if t > since) if recent else (),
                vitals=vitals,
                elder_open=frozenset(elder_open),
            )
        return states

    def _quiet_state(self, device_id: str, device: DeviceInfo | None) -> DeviceState:
        """The state of a device with nothing open, recent or running: the same at every
        batch (the registry is read once), so made once (most devices, most batches)."""
        state = self._quiet.get(device_id)
        if state is None:
            state = self._quiet[device_id] = DeviceState(device_id=device_id, device=device)
        return state

    # --- alerts written elsewhere ------------------------------------------------------------

    def changed(self, changes: Sequence[AlertChange], now: datetime) -> None:
        """Alerts the scheduler raised or counted: read back what the engine sees of them."""
        if changes:
            with self._sessions() as session:
                self._read_back(session, {c.device_id for c in changes}, changes, now, ())

    def _read_back(
        self,
        session: Session,
        device_ids: set[str],
        changes: Iterable[AlertChange],
        now: datetime,
        writes: Sequence[AlertWrite],
    ) -> None:
        """These devices' open alerts and recent occurrences, as the next batch's queries
        would read them; the elders' open welfare alerts if one may have changed."""
        device_ids |= {c.device_id for c in changes}
        ids = sorted(device_ids)
        found = open_alerts_of(session, ids)
        recent = recent_occurrences(session, ids, now - RATE_WINDOW)
        for device_id in ids:
            self._open[device_id] = found.get(device_id, {})
            self._recent[device_id] = recent.get(device_id, ())
        elder_kinds = {a.value for a in ELDER_ALERTS}
        if any(isinstance(w, ResolveElderAlert) for w in writes) or any(
            c.type in elder_kinds for c in changes
        ):
            self._elder_open = open_elder_alerts(session, self._elders)

    # --- held writes ------------------------------------------------------------------------

    def _hold_sightings(self, sightings: Iterable[Sighting]) -> None:
        """record_sightings' UPDATE, done on the memory copy: a device's last-seen time moves
        only forward, and a battery level or online state is kept from the last UPDATE that
        set one."""
        latest: dict[str, Sighting] = {}
        for sighting in sightings:  # one per device, as record_sightings folds a batch
            latest[sighting.device_id] = merge_sightings(latest.get(sighting.device_id), sighting)
        last_seen, heard, held_seen = self._last_seen, self._heard, self._held_seen
        for device_id, sighting in latest.items():
            seen = last_seen.get(device_id)
            if seen is not None and seen > sighting.seen_at:
                continue  # its WHERE last_seen_at <= :seen refuses it
            last_seen[device_id] = heard[device_id] = held_seen[device_id] = sighting.seen_at
            if sighting.battery is not None:
                self._held_battery[device_id] = sighting.battery
            if sighting.online is not None:
                self._held_online[device_id] = sighting.online

    def _hold_deadlines(self, deadlines: Iterable[SetDeadline]) -> None:
        """set_deadlines folds a batch (the latest basis, the later on a tie); between
        batches its WHERE basis_at < :basis keeps the first of equal bases, so a held deadline
        is replaced only by a newer basis: one write then leaves the row as all of them."""
        latest: dict[tuple[DeadlineRule, str], SetDeadline] = {}
        for item in deadlines:
            key = (item.rule, item.subject)
            if key not in latest or latest[key].basis_at <= item.basis_at:
                latest[key] = item
        for key, item in latest.items():
            held = self._held_deadlines.get(key)
            if held is None or held.basis_at < item.basis_at:
                self._held_deadlines[key] = item
                if item.due_at is not None and (
                    self.held_due is None or item.due_at < self.held_due
                ):
                    self.held_due = item.due_at

    def take_heard(self) -> dict[str, datetime]:
        """The last-seen times written (held or synced) since the last call."""
        heard, self._heard = self._heard, {}
        return heard

    def sync(self, session: Session) -> None:
        """Write what is held, in the caller's transaction: the same rows as batch by batch."""
        battery, online = self._held_battery, self._held_online
        record_sightings(
            session,
            [
                Sighting(
                    device_id=device_id,
                    seen_at=seen,
                    battery=battery.get(device_id),
                    online=online.get(device_id),
                )
                for device_id, seen in self._held_seen.items()
            ],
        )
        set_deadlines(session, self._held_deadlines.values())
        store_dead_letters(session, self._held_dead)
        self._held_seen, self._held_battery, self._held_online = {}, {}, {}
        self._held_deadlines, self._held_dead = {}, []
        self.held_due = None
