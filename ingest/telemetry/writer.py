"""The telemetry writer: batches points for InfluxDB on a thread of its own.

``submit`` is all the ingest path sees: it appends to a bounded buffer in memory and returns,
so a slow or absent InfluxDB never holds up an alert. The flusher thread sends a batch when
``batch_size`` points are waiting or the oldest has waited ``flush_interval_s``. A batch the
store cannot take now goes to the spool on disk, behind the others; while the spool holds
anything, new batches join it there, and the flusher sends the spool's oldest batch first,
after a jittered backoff that grows with each failure. So batches reach InfluxDB in the order
they were made, whatever the outage.

One request is in flight at a time, on a sender thread of its own; once its body is out, the
flusher takes the next full batch and encodes it, so that encoding is not on the path between
two requests (measured: docs/operations.md, Throughput). That batch waits as ``ready`` until the
request's outcome is known, then goes the same way as any other. Each batch reserves its
place in the spool's order when it leaves the buffer, so that under overload, when ``submit``
spools newer batches past the buffer's bound, the one in flight and the ready one still go
ahead of them if they fail.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog

from ingest import metrics
from ingest.telemetry.points import EncodedBatch, Point, encode_batch
from ingest.telemetry.ports import BatchRefusedError, StoreUnavailableError, TelemetrySink
from ingest.telemetry.spool import Dropped, Spool

log = structlog.get_logger(__name__)

# InfluxDB's advice: "The optimal batch size is 5000 lines of line protocol"; and its client
# libraries flush what waits every second.
DEFAULT_BATCH_SIZE = 5000
DEFAULT_FLUSH_INTERVAL_S = 1.0


def jittered_backoff(failures: int) -> float:
    """0.5 s doubling up to 30 s, with jitter so that several processes do not retry in step."""
    ceiling: float = min(30.0, 0.5 * 2 ** min(failures - 1, 10))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


class TelemetryWriter:
    def __init__(
        self,
        sink: TelemetrySink,
        spool: Spool,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        buffer_points: int = 10 * DEFAULT_BATCH_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        retry_delay_s: Callable[[int], float] = jittered_backoff,
    ) -> None:
        if buffer_points < batch_size:
            raise ValueError("the buffer must hold at least one batch")
        self._sink, self._spool = sink, spool
        self._batch_size, self._interval = batch_size, flush_interval_s
        self._buffer_points = buffer_points
        self._monotonic, self._wall_clock = monotonic, wall_clock
        self._retry_delay_s = retry_delay_s
        self._buffer: deque[Point] = deque()
        # Taken from the buffer and encoded while the previous request was in flight; the
        # next to go, before anything in the buffer.
        self._ready: EncodedBatch | None = None
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anxin-telemetry-send")
        # When the oldest point in the buffer arrived (monotonic), for the flush interval.
        self._waiting_since: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._stopping = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        metrics.TELEMETRY_BUFFER.set_function(lambda: len(self._buffer))
        metrics.TELEMETRY_SPOOL_POINTS.set_function(lambda: spool.points)
        metrics.TELEMETRY_SPOOL_BYTES.set_function(lambda: spool.size)
        metrics.TELEMETRY_SPOOL_AGE.set_function(self.spool_age_s)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def spool(self) -> Spool:
        return self._spool

    def spool_age_s(self) -> float:
        oldest = self._spool.oldest_point_ms()
        return 0.0 if oldest is None else max(0.0, self._wall_clock() - oldest / 1000)

    def submit(self, points: Sequence[Point]) -> None:
        """Hand points over; returns at once. Past the buffer's bound, the oldest batches go
        to the spool from here (a file write, never a network call)."""
        if not points:
            return
        overflow: list[tuple[list[Point], int]] = []
        with self._wake:
            was_empty = not self._buffer
            if was_empty:
                self._waiting_since = self._monotonic()
            self._buffer.extend(points)
            while len(self._buffer) > self._buffer_points:
                overflow.append(self._take_locked())
            # The flusher sleeps until the next thing due: the first point's interval starts
            # now, or a batch is full.
            if was_empty or len(self._buffer) >= self._batch_size:
                self._wake.notify()
        for batch, place in overflow:
            self._to_spool(batch, place)

    # The flusher ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anxin-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the flusher; write what is left in memory, or spool it if the store fails."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        ready, self._ready = self._ready, None
        if ready is not None and (self._spool.batches or not self._write(ready)):
            self._spool_encoded(ready)
        while True:
            with self._wake:
                if not self._buffer:
                    break
                batch, place = self._take_locked()
            if self._spool.batches or not self._send(batch, place):
                self._to_spool(batch, place)
        self._sender.shutdown()
        self._sink.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (wait := self._idle_for()) > 0:
                    self._wake.wait(wait)
                if self._stopping:
                    return
            try:
                self.step()
            except Exception:  # a bug must not end telemetry for the process's life
                log.exception("telemetry.writer_failed")
                with self._wake:
                    self._wake.wait(1.0)

    def _idle_for(self) -> float:
        """Seconds until there is work: 0 now, else how long to sleep (called locked)."""
        now = self._monotonic()
        waits = []
        if self._ready is not None:
            return 0
        if self._buffer:
            if len(self._buffer) >= self._batch_size:
                return 0
            since = now if self._waiting_since is None else self._waiting_since
            waits.append(since + self._interval - now)
        if self._spool.batches:
            waits.append(self._retry_at - now)
        if not waits:
            return 3600.0  # until submit() wakes us
        return max(0.0, min(waits))

    def step(self) -> bool:
        """Do what is due now: move one batch out of the buffer, else try the spool's oldest.
        Returns whether there was anything to do (the flusher thread, and tests, call it)."""
        now = self._monotonic()
        batch, self._ready = self._ready, None
        if batch is None and (taken := self._take_due(now)) is not None:
            batch = _encoded(*taken)
            if batch is None:
                return True  # nothing in it InfluxDB would take
        if batch is not None:
            if self._spool.batches or now < self._retry_at:
                self._spool_encoded(batch)
                return True
            sent = threading.Event()
            request = self._sender.submit(self._write, batch, sent)
            try:
                # While the request is in flight: the next full batch, encoded. Not before
                # the body is out: encoding holds the GIL, and the sender would wait a switch
                # interval (5 ms) for it at each step of sending.
                if (following := self._take_due(now)) is not None:
                    sent.wait()
                    self._ready = _encoded(*following)
            finally:  # whatever happened meanwhile, the batch in flight is written or kept
                if not request.result():
                    self._spool_encoded(batch)
            return True
        if self._spool.batches and now >= self._retry_at:
            self._send_spooled()
            return True
        return False

    def _take_due(self, now: float) -> tuple[list[Point], int] | None:
        """The next batch from the buffer if it is due: full, or its oldest point waited the
        flush interval."""
        with self._wake:
            due = self._buffer and (
                len(self._buffer) >= self._batch_size
                or (self._waiting_since is not None and now - self._waiting_since >= self._interval)
            )
            return self._take_locked() if due else None

    def _take_locked(self) -> tuple[list[Point], int]:
        """The buffer's oldest batch, with its place in the spool's order should it go there:
        so that a batch in flight or ready that fails is kept ahead of newer ones that
        ``submit`` spooled meanwhile."""
        count = min(self._batch_size, len(self._buffer))
        batch = [self._buffer.popleft() for _ in range(count)]
        self._waiting_since = self._monotonic() if self._buffer else None
        return batch, self._spool.reserve()

    def _send(self, points: list[Point], place: int) -> bool:
        """Write a batch from memory; False if it must wait in the spool."""
        encoded = _encoded(points, place)
        return encoded is None or self._write(encoded)

    def _send_spooled(self) -> None:
        head = self._spool.peek()
        if head is None:
            return
        entry, body = head
        if self._write(EncodedBatch(body, entry.points, entry.oldest_ms)):
            self._spool.remove(entry)

    def _write(self, batch: EncodedBatch, sent: threading.Event | None = None) -> bool:
        """Send a batch (on the sender thread, or in stop()); False if it must be kept.
        ``sent`` is set once the body is out, or else once the request is over."""
        try:
            return self._written(batch, None if sent is None else sent.set)
        finally:
            if sent is not None:
                sent.set()

    def _written(self, batch: EncodedBatch, on_sent: Callable[[], object] | None) -> bool:
        points = batch.points
        try:
            self._sink.write(batch.body, on_sent)
        except BatchRefusedError as exc:
            # Retrying cannot help; InfluxDB wrote the batch's other points ("partial write").
            metrics.TELEMETRY_DROPPED.labels("refused").inc(points)
            log.error("telemetry.batch_refused", error=str(exc)[:300], points=points)
        except Exception as exc:
            # StoreUnavailableError, or a failure nobody foresaw (kept with its traceback):
            # either way the batch is kept and tried again.
            self._failures += 1
            delay = self._retry_delay_s(self._failures)
            self._retry_at = self._monotonic() + delay
            metrics.TELEMETRY_RETRIES.inc()
            log.warning(
                "telemetry.store_unavailable",
                error=str(exc)[:300],
                retry_in_s=round(delay, 2),
                spooled_points=self._spool.points,
                exc_info=not isinstance(exc, StoreUnavailableError),
            )
            return False
        else:
            metrics.TELEMETRY_POINTS_WRITTEN.inc(points)
            metrics.TELEMETRY_BATCHES_WRITTEN.inc()
        if self._failures:
            log.info("telemetry.store_back", after_failures=self._failures)
        self._failures = 0
        return True

    def _to_spool(self, points: list[Point], place: int) -> None:
        encoded = _encoded(points, place)
        if encoded is not None:
            self._spool_encoded(encoded)

    def _spool_encoded(self, encoded: EncodedBatch) -> None:
        try:
            dropped = self._spool.append(encoded)
        except OSError as exc:  # the disk is full or gone: telemetry is lost, alerts are not
            metrics.TELEMETRY_DROPPED.labels("spool_failed").inc(encoded.points)
            log.error("telemetry.spool_failed", error=str(exc), points=encoded.points)
            return
        if dropped is not None:
            _report_dropped(dropped)


def _encoded(points: list[Point], place: int) -> EncodedBatch | None:
    """The batch as line protocol; points without a field InfluxDB takes are counted out."""
    encoded = encode_batch(points, place)
    written = 0 if encoded is None else encoded.points
    if written < len(points):
        metrics.TELEMETRY_DROPPED.labels("unwritable").inc(len(points) - written)
    return encoded


def _report_dropped(dropped: Dropped) -> None:
    metrics.TELEMETRY_DROPPED.labels("spool_full").inc(dropped.points)
    log.warning(
        "telemetry.spool_full",
        dropped_points=dropped.points,
        oldest_dropped_ms=dropped.oldest_ms,
    )
