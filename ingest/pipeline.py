"""The ingest pipeline: decode → decide → store one batch in one transaction (writer thread)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from alerting.deadlines import set_deadlines
from alerting.decisions import (
    CancelAlert,
    Decision,
    NoteOnAlert,
    RaiseAlert,
    RecordSighting,
    RejectMessage,
    ResolveAlert,
    ResolveElderAlert,
    SetDeadline,
)
from alerting.engine import RATE_WINDOW, DeviceState, RulesEngine, VitalRun
from alerting.model import AlertStatus
from alerting.store import (
    AlertChange,
    ChangeKind,
    batched_timeline,
    close_elder_alert,
    close_open,
    has_open_alert,
    lock_open_alerts,
    locked_open_alerts,
    note_open,
    open_elder_alerts,
    open_new_alerts,
    raise_or_coalesce,
    recent_occurrences,
)
from devices.clock import Clock, system_clock
from devices.events import Decoded, DeviceEvent, Heartbeat, Rejected, SensorEvent, SosPressed
from devices.payloads import AckStatus
from devices.registry import DeviceInfo, Sighting, find_zigbee_devices, record_sightings
from devices.topics import Uplink, parse_uplink
from ingest import metrics
from ingest.dead_letters import store_dead_letters
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.registry_cache import REGISTRY_TTL, DeadlineThrottle, DeviceCache, SightingThrottle
from ingest.telemetry.points import Point, batch_points
from ingest.vital_memory import VitalMemory, idle_for
from ingest.zigbee_memory import recall, remember

log = structlog.get_logger(__name__)

# Spoken or shown by the device once its SOS is stored: "We received your call; please stay
# calm, we are contacting you."
SOS_RECEIVED_MESSAGE = "已收到您的呼叫，请保持冷静，我们正在联系您。"


def is_transient(error: SQLAlchemyError) -> bool:
    """Will the same write succeed later (database away, locked, connection lost)?"""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceAck:
    device_id: str
    alert_id: int
    status: AckStatus
    seq: int | None = None


@dataclass(kw_only=True, slots=True)
class BatchResult:
    changes: list[AlertChange] = field(default_factory=list)
    device_acks: list[DeviceAck] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    deadlines: list[SetDeadline] = field(default_factory=list)
    recent: dict[str, tuple[datetime, ...]] = field(default_factory=dict)
    vitals: dict[str, Mapping[str, VitalRun]] = field(default_factory=dict)
    # Heartbeats' and telemetry's points, for InfluxDB once the batch is committed.
    points: list[Point] = field(default_factory=list)

    @property
    def dead_letters(self) -> int:
        return len(self.rejected)

    def merge(self, other: BatchResult) -> None:
        self.changes += other.changes
        self.device_acks += other.device_acks
        self.rejected += other.rejected
        self.sightings += other.sightings
        self.deadlines += other.deadlines
        self.recent.update(other.recent)
        self.vitals.update(other.vitals)
        self.points += other.points


class IngestPipeline:
    """Stores batches of deliveries. Synchronous: it runs on the writer thread."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        decoder: MessageDecoder,
        engine: RulesEngine,
        clock: Clock = system_clock,
        telemetry_points: bool = True,
        registry_ttl: timedelta = REGISTRY_TTL,
    ) -> None:
        self._sessions, self._decoder, self._engine = sessions, decoder, engine
        self._clock = clock
        # Without a telemetry store, no points are made (a few µs a message saved).
        self._telemetry_points = telemetry_points
        self._devices = DeviceCache(clock, registry_ttl)
        self._sightings = SightingThrottle()
        self._deadlines = DeadlineThrottle()
        # Vital signs out of range in a row per device, for the [vitals] rule (kept once
        # committed; this process's own: not shared by ingest members yet). Bounded.
        self._vitals = VitalMemory(clock, idle=idle_for(engine.rules.vitals.sustained_s))

    def store(self, deliveries: Sequence[Delivery]) -> BatchResult:
        """Store the batch; if it fails for good, store its messages one by one, so that one
        bad message (or a bug it triggers) cannot hold up the rest, nor stop the pipeline."""
        try:
            return self.store_batch(deliveries)
        except Exception as error:
            if isinstance(error, SQLAlchemyError) and is_transient(error):
                raise
            # Not a database refusal: a bug. Keep its traceback for whoever fixes it.
            bug = not isinstance(error, SQLAlchemyError)
            log.error(
                "ingest.batch_refused",
                error=error_name(error),
                messages=len(deliveries),
                exc_info=bug,
            )
        result = BatchResult()
        for delivery in deliveries:
            try:
                result.merge(self.store_batch([delivery]))
            except Exception as error:
                if isinstance(error, SQLAlchemyError) and is_transient(error):
                    raise
                result.merge(self.store_refused(delivery, error))
        return result

    def store_batch(self, deliveries: Sequence[Delivery]) -> BatchResult:
        """All of the batch in one transaction, or none of it."""
        with self._sessions.begin() as session:
            names = self._decoder.zigbee_names(deliveries)
            zigbee = find_zigbee_devices(session, names)
            # The registered names' state memory, shared by every ingest member.
            remembered = recall(session, zigbee, self._clock())
            decoding = self._decoder.decode(deliveries, zigbee, remembered)
            result = self._store(session, list(zip(deliveries, decoding.events, strict=True)))
            remember(session, decoding.zigbee_states, zigbee, self._clock())
        self._committed(result)
        self._decoder.commit(decoding)
        return self._counted(deliveries, result)

    def store_refused(self, delivery: Delivery, error: Exception) -> BatchResult:
        """A message the store will not take: a dead letter, and still an alert if an SOS."""
        reason = f"could not be stored: {error_name(error)}"
        log.error("ingest.message_refused", topic=delivery.topic, error=error_name(error))
        topic = parse_uplink(delivery.topic, self._decoder.prefix)
        sos_device = self._sos_device(delivery)
        replacement: Decoded
        if sos_device is not None:
            # The bare alarm, without the payload's details (they may be what failed).
            replacement = SosPressed(
                device_id=sos_device,
                received_at=delivery.received_at,
                occurred_at=delivery.received_at,
                payload_error=reason,
            )
        else:
            replacement = Rejected(
                topic=delivery.topic,
                payload=delivery.payload,
                reason=reason,
                received_at=delivery.received_at,
                device_id=topic.device_id if topic else None,
            )
        with self._sessions.begin() as session:
            result = self._store(session, [(delivery, (replacement,))])
        self._committed(result)
        return self._counted([delivery], result)

    def _sos_device(self, delivery: Delivery) -> str | None:
        """Whose SOS this is, if it is one: the sos topic, or an SOS read by an adapter
        (Contact ID 100/101, a Zigbee emergency button)."""
        topic = parse_uplink(delivery.topic, self._decoder.prefix)
        if topic is not None and topic.kind is Uplink.SOS:
            return topic.device_id
        try:
            with self._sessions() as session:
                names = self._decoder.zigbee_names([delivery])
                zigbee = find_zigbee_devices(session, names)
            events = self._decoder.decode([delivery], zigbee).events[0]
        except Exception:  # reading it again failed too: it cannot be known to be an SOS
            log.exception("ingest.sos_check_failed", topic=delivery.topic)
            return None
        return next((e.device_id for e in events if isinstance(e, SosPressed)), None)

    def _store(
        self, session: Session, batch: Sequence[tuple[Delivery, Sequence[Decoded]]]
    ) -> BatchResult:
        """Decide about each event and write what was decided, in the caller's transaction."""
        result = BatchResult()
        sightings: list[Sighting] = []
        deadlines: list[SetDeadline] = []
        events = [(d, e) for d, decoded in batch for e in decoded]
        # In one pass: the devices heard from, and those with sensor events.
        heard: set[str] = set()
        sensing: set[str] = set()
        for _, event in events:
            if not isinstance(event, Rejected):
                heard.add(event.device_id)
                if isinstance(event, SensorEvent):
                    sensing.add(event.device_id)
        states = self._states(session, heard, sensing)
        now = self._clock()
        # Decided first (the engine carries each device's state from event to event), then
        # written: the open alerts the writes touch are read and locked in one query.
        writes: list[RaiseAlert | ResolveAlert | CancelAlert | NoteOnAlert | ResolveElderAlert] = []
        stored: list[tuple[DeviceEvent, DeviceInfo | None]] = []  # for their points
        quiet_sighting = self._engine.quiet_sighting
        for delivery, event in events:
            if isinstance(event, Rejected):
                result.rejected.append(event)
                continue
            state = states[event.device_id]
            # Most of what a fleet sends: a heartbeat whose sighting is all the engine would
            # decide, the state unchanged (no Evaluation made for it).
            sighting = quiet_sighting(state, event) if type(event) is Heartbeat else None
            if sighting is not None:
                sightings.append(sighting)
            else:
                evaluation = self._engine.evaluate(state, event, now)
                states[event.device_id] = evaluation.state
                refused = sort_decisions(
                    delivery, event.device_id, evaluation.decisions,
                    sightings, deadlines, result.rejected, writes,
                )  # fmt: skip
                if refused:
                    continue
            if self._telemetry_points:
                stored.append((event, state.device))
        result.points = batch_points(stored)
        write_alerts(session, writes, now, result)
        result.sightings = self._sightings.worth_writing(sightings)
        result.recent = {device_id: state.recent for device_id, state in states.items()}
        result.vitals = {device_id: state.vitals for device_id, state in states.items()}
        record_sightings(session, result.sightings)
        result.deadlines = self._deadlines.worth_writing(deadlines)
        set_deadlines(session, result.deadlines)
        store_dead_letters(session, result.rejected)
        return result

    def _states(
        self, session: Session, device_ids: set[str], sensing: set[str]
    ) -> dict[str, DeviceState]:
        """What the engine needs of each device: registration, open alerts, recent counts,
        and for devices with sensor events, their elder's open welfare alerts (a batch of
        heartbeats costs no query for them)."""
        devices = self._devices.find(session, device_ids)
        # Read and locked at once: a repeat another member counts on one of these alerts waits
        # for this batch, and the rate limit below sees every repeat committed before.
        open_alerts = locked_open_alerts(session, sorted(device_ids))
        recent = recent_occurrences(
            session,
            sorted(device_ids),
            self._clock() - RATE_WINDOW,
            most=self._engine.rules.rate_limit.per_device_per_minute,
        )
        elders = {
            info.elder_id
            for device_id in sensing
            if (info := devices.get(device_id)) is not None and info.elder_id is not None
        }
        elder_open = open_elder_alerts(session, sorted(elders))
        states = {}
        for device_id in device_ids:
            device = devices.get(device_id)
            elder = device.elder_id if device is not None else None
            states[device_id] = DeviceState(
                device_id=device_id,
                device=device,
                open_alerts=open_alerts.get(device_id, {}),
                recent=recent.get(device_id, ()),
                vitals=self._vitals.get(device_id),
                elder_open=frozenset(elder_open.get(elder, ()))
                if elder is not None
                else frozenset(),
            )
        return states

    @staticmethod
    def _apply(
        session: Session,
        decision: RaiseAlert | ResolveAlert | CancelAlert | NoteOnAlert | ResolveElderAlert,
        now: datetime,
        result: BatchResult,
    ) -> None:
        if isinstance(decision, RaiseAlert):
            IngestPipeline._raise(session, decision, now, result)
            return
        if isinstance(decision, ResolveElderAlert):
            closed = close_elder_alert(
                session,
                elder_id=decision.elder_id,
                alert=decision.type,
                now=now,
                reason=decision.reason,
            )
            if closed is not None:
                result.changes.append(closed)
            return
        actor = "system" if isinstance(decision, ResolveAlert) else f"device:{decision.device_id}"
        if isinstance(decision, NoteOnAlert):
            change = note_open(
                session,
                device_id=decision.device_id,
                alert=decision.type,
                now=now,
                actor=actor,
                action=decision.action,
                detail=decision.detail,
            )
        else:
            status = (
                AlertStatus.RESOLVED
                if isinstance(decision, ResolveAlert)
                else AlertStatus.CANCELLED
            )
            change = close_open(
                session,
                device_id=decision.device_id,
                alert=decision.type,
                status=status,
                now=now,
                actor=actor,
                reason=decision.reason,
            )
        if change is not None:
            result.changes.append(change)

    def _committed(self, result: BatchResult) -> None:
        """What the engine and the throttle remember changes only once the batch is stored."""
        self._sightings.written(result.sightings)
        self._deadlines.written(result.deadlines)
        self._vitals.keep(result.vitals)

    def _counted(self, deliveries: Sequence[Delivery], result: BatchResult) -> BatchResult:
        # Counted once committed, so a retried batch is not counted twice; by label, once per
        # batch rather than once per message (the counters take a lock each time).
        # Labelled per topic, not per message: a batch repeats its devices' few topics.
        for kind, count in self._by_label(Counter(d.topic for d in deliveries)).items():
            metrics.MESSAGES.labels(kind).inc(count)
        for kind, count in self._by_label(Counter(r.topic for r in result.rejected)).items():
            metrics.DEAD_LETTERS.labels(kind).inc(count)
        return result

    def _by_label(self, topics: Counter[str]) -> Counter[str]:
        label = self._decoder.label
        labels: Counter[str] = Counter()
        for topic, count in topics.items():
            labels[label(topic)] += count
        return labels

    @staticmethod
    def _open_new(
        session: Session,
        writes: Sequence[RaiseAlert | ResolveAlert | CancelAlert | NoteOnAlert | ResolveElderAlert],
        now: datetime,
    ) -> dict[int, AlertChange]:
        """The batch's new alerts (a device's first write in the batch, raising a type it has
        no open alert of) in one INSERT; the other writes go one by one, in order."""
        seen: set[str] = set()
        firsts: list[int] = []
        for index, write in enumerate(writes):
            if isinstance(write, ResolveElderAlert) or write.device_id in seen:
                continue
            seen.add(write.device_id)
            if (
                isinstance(write, RaiseAlert)
                and has_open_alert(session, write.device_id, write.type) is False
            ):
                firsts.append(index)
        raises = [writes[i] for i in firsts]
        changes = open_new_alerts(session, [w for w in raises if isinstance(w, RaiseAlert)], now)
        return {i: c for i, c in zip(firsts, changes, strict=True) if c is not None}

    @staticmethod
    def _raise(session: Session, decision: RaiseAlert, now: datetime, result: BatchResult) -> None:
        IngestPipeline._counted_raise(decision, raise_or_coalesce(session, decision, now), result)

    @staticmethod
    def _counted_raise(decision: RaiseAlert, change: AlertChange, result: BatchResult) -> None:
        if change.kind is ChangeKind.CREATED:
            metrics.ALERTS_RAISED.labels(change.type).inc()
        elif change.kind is ChangeKind.UPDATED:
            metrics.ALERTS_COALESCED.labels(change.type).inc()
        if change.kind is not ChangeKind.DUPLICATE:
            result.changes.append(change)
        if decision.acknowledge_device:
            result.device_acks.append(
                DeviceAck(
                    device_id=decision.device_id,
                    alert_id=change.alert_id,
                    status=AckStatus.RECEIVED,
                    seq=decision.seq,
                )
            )


AlertWrite = RaiseAlert | ResolveAlert | CancelAlert | NoteOnAlert | ResolveElderAlert


def sort_decisions(
    delivery: Delivery,
    device_id: str,
    decisions: Iterable[Decision],
    sightings: list[Sighting],
    deadlines: list[SetDeadline],
    rejected: list[Rejected],
    writes: list[AlertWrite],
) -> bool:
    """One message's decisions into its batch's lists; True if the engine refused it.
    Shared with the virtual replay's memory store (simulators/replay_store.py)."""
    refused = False
    for decision in decisions:
        if isinstance(decision, RecordSighting):
            sightings.append(decision.sighting)
        elif isinstance(decision, SetDeadline):
            deadlines.append(decision)
        elif isinstance(decision, RejectMessage):
            refused = True
            rejected.append(
                Rejected(
                    topic=delivery.topic,
                    payload=delivery.payload,
                    reason=decision.reason,
                    received_at=delivery.received_at,
                    device_id=device_id,
                )
            )
        else:
            writes.append(decision)
    return refused


def write_alerts(
    session: Session, writes: Sequence[AlertWrite], now: datetime, result: BatchResult
) -> None:
    """The engine's alert decisions of a batch, in order, in the caller's transaction: the open
    alerts they touch read and locked in one query, the new ones opened in one INSERT, the
    timeline rows of them all written in one more (batched_timeline). (The virtual replay's
    memory store, simulators/replay_store.py, writes its alerts with it.)"""
    lock_open_alerts(session, [w.device_id for w in writes if not isinstance(w, ResolveElderAlert)])
    with batched_timeline(session):
        opened = IngestPipeline._open_new(session, writes, now)
        for index, write in enumerate(writes):
            change = opened.get(index)
            if change is not None and isinstance(write, RaiseAlert):
                IngestPipeline._counted_raise(write, change, result)
            else:
                IngestPipeline._apply(session, write, now, result)


def error_name(error: Exception) -> str:
    """The driver's error class and first line, without SQL or parameters (they hold data)."""
    original = getattr(error, "orig", None) or error
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first_line}"[:300]
