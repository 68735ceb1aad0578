"""The ingest pipeline: decode → decide → store in one transaction → acknowledge → tell devices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from alerting.decisions import RaiseAlert, RecordSighting, RejectMessage
from alerting.engine import RulesEngine
from alerting.feed import AlertFeed
from alerting.store import AlertChange, ChangeKind, raise_or_coalesce
from devices.clock import Clock, system_clock
from devices.codec import NativeCodec
from devices.events import Rejected
from devices.payloads import AckPayload, AckStatus
from devices.registry import Sighting, find_devices, record_sightings
from devices.topics import Downlink, downlink_topic
from ingest import metrics
from ingest.dead_letters import store_dead_letters
from ingest.mqtt import Delivery, MqttConnection

log = structlog.get_logger(__name__)

# Spoken or shown by the device when its SOS is stored: "Your call was received; help is coming."
SOS_RECEIVED_MESSAGE = "已收到您的呼叫，请保持冷静，我们正在联系您。"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceAck:
    device_id: str
    alert_id: int
    status: AckStatus


@dataclass(kw_only=True, slots=True)
class BatchResult:
    changes: list[AlertChange] = field(default_factory=list)
    device_acks: list[DeviceAck] = field(default_factory=list)
    dead_letters: int = 0


class IngestPipeline:
    """Stores one batch of deliveries in one transaction. Synchronous: runs on the writer thread."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        codec: NativeCodec,
        engine: RulesEngine,
        clock: Clock = system_clock,
    ) -> None:
        self._sessions, self._codec, self._engine, self._clock = sessions, codec, engine, clock

    def store_batch(self, deliveries: Sequence[Delivery]) -> BatchResult:
        decoded = [self._codec.decode(d.topic, d.payload, d.received_at) for d in deliveries]
        result = BatchResult()
        rejected: list[Rejected] = []
        sightings: list[Sighting] = []
        with self._sessions.begin() as session:
            devices = find_devices(
                session, (e.device_id for e in decoded if not isinstance(e, Rejected))
            )
            now = self._clock()
            for delivery, event in zip(deliveries, decoded, strict=True):
                kind = delivery.topic.rsplit("/", 1)[-1]
                metrics.MESSAGES.labels(kind).inc()
                if isinstance(event, Rejected):
                    rejected.append(event)
                    continue
                for decision in self._engine.evaluate(event, devices.get(event.device_id), now):
                    if isinstance(decision, RecordSighting):
                        sightings.append(decision.sighting)
                    elif isinstance(decision, RejectMessage):
                        rejected.append(
                            Rejected(
                                topic=delivery.topic,
                                payload=delivery.payload,
                                reason=decision.reason,
                                received_at=delivery.received_at,
                                device_id=event.device_id,
                            )
                        )
                    else:
                        self._raise(session, decision, now, result)
            record_sightings(session, sightings)
            store_dead_letters(session, rejected)
        for item in rejected:
            metrics.DEAD_LETTERS.labels(item.topic.rsplit("/", 1)[-1]).inc()
        result.dead_letters = len(rejected)
        return result

    @staticmethod
    def _raise(session: Session, decision: RaiseAlert, now: datetime, result: BatchResult) -> None:
        change = raise_or_coalesce(session, decision, now)
        result.changes.append(change)
        if change.kind is ChangeKind.CREATED:
            metrics.ALERTS_RAISED.labels(change.type).inc()
        else:
            metrics.ALERTS_COALESCED.labels(change.type).inc()
        if decision.acknowledge_device:
            result.device_acks.append(
                DeviceAck(
                    device_id=decision.device_id,
                    alert_id=change.alert_id,
                    status=AckStatus.RECEIVED,
                )
            )


class IngestService:
    """Drains the broker connection batch by batch; acknowledges only what is committed."""

    def __init__(
        self,
        *,
        connection: MqttConnection,
        pipeline: IngestPipeline,
        feed: AlertFeed,
        topic_prefix: str,
        max_batch: int = 1000,
    ) -> None:
        self._connection, self._pipeline, self._feed = connection, pipeline, feed
        self._prefix, self._max_batch = topic_prefix, max_batch
        # One writer thread: batches commit in the order they arrived.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anxin-store")

    async def run(self) -> None:
        try:
            while True:
                batch = await self._connection.next_batch(self._max_batch)
                started = time.perf_counter()
                result = await self._store(batch)
                metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
                metrics.BATCH_SIZE.observe(len(batch))
                self._connection.ack(batch)
                self._tell_devices(result.device_acks)
                if result.changes:
                    self._feed.publish(result.changes)
        finally:
            self._writer.shutdown(wait=True)

    async def _store(self, batch: Sequence[Delivery]) -> BatchResult:
        loop = asyncio.get_running_loop()
        # A store that is away holds the batch (unacknowledged) until it is back: never dropped.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(SQLAlchemyError),
            wait=wait_exponential_jitter(initial=0.1, max=10),
            before_sleep=_log_store_retry,
        ):
            with attempt:
                return await loop.run_in_executor(self._writer, self._pipeline.store_batch, batch)
        raise AssertionError("unreachable: retries never stop")

    def _tell_devices(self, acks: Sequence[DeviceAck]) -> None:
        for ack in acks:
            message = SOS_RECEIVED_MESSAGE if ack.status is AckStatus.RECEIVED else ""
            payload = AckPayload(alert_id=ack.alert_id, status=ack.status, message=message)
            topic = downlink_topic(ack.device_id, Downlink.ACK, self._prefix)
            self._connection.publish(topic, payload.model_dump_json().encode(), qos=1)


def _log_store_retry(state: RetryCallState) -> None:
    metrics.BATCH_FAILURES.inc()
    error = state.outcome.exception() if state.outcome is not None else None
    log.error("ingest.store_failed", error=repr(error), retrying=True)
