"""The ingest service: drains the broker connection batch by batch into the pipeline, and
acknowledges only what is committed."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog
from sqlalchemy.exc import SQLAlchemyError

from alerting.feed import AlertFeed
from devices.payloads import AckPayload, AckStatus
from devices.topics import Downlink, downlink_topic
from ingest import metrics
from ingest.mqtt import Delivery, MqttConnection
from ingest.pipeline import (
    SOS_RECEIVED_MESSAGE,
    BatchResult,
    DeviceAck,
    IngestPipeline,
    error_name,
    is_transient,
)
from ingest.telemetry.points import Point

log = structlog.get_logger(__name__)

# Takes a committed batch's telemetry points; must return without waiting on InfluxDB.
TelemetryHandOver = Callable[[Sequence[Point]], None]


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
        retry_delay_s: Callable[[int], float] | None = None,
        telemetry: TelemetryHandOver | None = None,
    ) -> None:
        self._connection, self._pipeline, self._feed = connection, pipeline, feed
        self._telemetry = telemetry
        self._prefix, self._max_batch = topic_prefix, max_batch
        self._retry_delay_s = retry_delay_s or _jittered_backoff
        self._stopping = asyncio.Event()
        # One writer thread: batches commit in the order they arrived.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anxin-store")

    def stop(self) -> None:
        """Finish the batch under way (commit and acknowledge it), then return from run()."""
        self._stopping.set()
        self._connection.interrupt()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batch = await self._connection.next_batch(self._max_batch)
                if not batch:
                    continue
                started = time.perf_counter()
                result = await self._store(batch)
                if result is None:
                    break  # stopped while the store was away: the broker keeps the batch
                metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
                metrics.BATCH_SIZE.observe(len(batch))
                self._connection.ack(batch)
                self._tell_devices(result.device_acks)
                if result.changes:
                    self._feed.publish(result.changes)
                if result.points and self._telemetry is not None:
                    # Last, and on the writer thread, not awaited: the acks and the next
                    # batch never wait for it.
                    self._writer.submit(_hand_over, self._telemetry, result.points)
        finally:
            self._writer.shutdown(wait=True)

    async def _store(self, batch: Sequence[Delivery]) -> BatchResult | None:
        """Store the batch, waiting out an absent store; never drops it, never acks it early."""
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            try:
                return await loop.run_in_executor(self._writer, self._pipeline.store, batch)
            except SQLAlchemyError as error:
                if not is_transient(error):
                    raise
                failures += 1
                metrics.BATCH_FAILURES.inc()
                delay = self._retry_delay_s(failures)
                log.error("ingest.store_unavailable", error=error_name(error), retry_in_s=delay)
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                return None
            except TimeoutError:
                continue

    def _tell_devices(self, acks: Sequence[DeviceAck]) -> None:
        for ack in acks:
            message = SOS_RECEIVED_MESSAGE if ack.status is AckStatus.RECEIVED else ""
            payload = AckPayload(
                alert_id=ack.alert_id, status=ack.status, message=message, seq=ack.seq
            )
            topic = downlink_topic(ack.device_id, Downlink.ACK, self._prefix)
            body = payload.model_dump_json(exclude_none=True).encode()
            self._connection.publish(topic, body, qos=1)


def _hand_over(telemetry: TelemetryHandOver, points: Sequence[Point]) -> None:
    try:
        telemetry(points)
    except Exception:  # telemetry is never a reason to stop storing alerts
        log.exception("telemetry.hand_over_failed", points=len(points))


def _jittered_backoff(failures: int) -> float:
    """0.1 s doubling up to 10 s, with full jitter so several processes do not retry in step."""
    ceiling: float = min(10.0, 0.1 * 2 ** min(failures, 10))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto
