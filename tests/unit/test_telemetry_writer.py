"""The writer's batching, spooling and order, with an in-memory store and a hand-moved clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import metrics
from ingest.telemetry import writer as writer_module
from ingest.telemetry.points import Point
from ingest.telemetry.ports import BatchRefusedError, StoreUnavailableError
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import TelemetryWriter
from tests.support.service import wait_until


class MemoryStore:
    """A TelemetrySink that keeps the bodies, and can be down or refusing."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.down = False
        self.refuse = False
        self.attempts = 0

    def write(self, body: bytes, on_sent: Callable[[], object] | None = None) -> None:
        self.attempts += 1
        if self.down:
            raise StoreUnavailableError("connection refused")
        if self.refuse:
            raise BatchRefusedError("HTTP 400: partial write")
        self.bodies.append(body)

    def ping(self) -> bool:
        return not self.down

    def close(self) -> None:
        pass

    def times(self) -> list[int]:
        return [int(line.rsplit(b" ", 1)[1]) for b in self.bodies for line in b.splitlines()]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def points(start: int, count: int) -> list[Point]:
    return [
        Point("heartbeat", {"device_id": "d"}, {"seen": 1}, t) for t in range(start, start + count)
    ]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def writer(
    store: MemoryStore,
    clock: Clock,
    folder: Path,
    *,
    buffer_points: int = 100,
    spool_bytes: int = 1 << 20,
) -> TelemetryWriter:
    return TelemetryWriter(
        store,
        Spool(folder, spool_bytes),
        batch_size=10,
        flush_interval_s=1.0,
        buffer_points=buffer_points,
        monotonic=clock,
        wall_clock=lambda: clock.now + 1_000,
        retry_delay_s=lambda failures: 5.0,
    )


def test_a_full_batch_goes_at_once_a_partial_one_after_the_interval(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 13))
    assert w.step()
    assert len(store.bodies) == 1
    assert store.times() == list(range(10))
    assert not w.step()  # 3 points wait for the interval
    clock.now += 1.0
    assert w.step()
    assert store.times() == list(range(13))
    assert not w.step()


def test_outage_spools_in_order_and_drains_when_back(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    w = writer(store, clock, tmp_path)
    store.down = True
    w.submit(points(0, 10))
    w.step()  # fails: to the spool, retry in 5 s
    assert w.spool.points == 10
    assert store.attempts == 1
    w.submit(points(10, 25))
    while w.step():
        pass
    clock.now += 1.0
    while w.step():
        pass
    assert w.spool.points == 35
    assert store.attempts == 1
    store.down = False
    clock.now += 5.0
    while w.step():
        pass
    assert store.times() == list(range(35))  # all, once, in order
    assert w.spool.points == 0


def test_refused_batch_is_dropped_and_counted(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    w = writer(store, clock, tmp_path)
    before = metrics.TELEMETRY_DROPPED.labels("refused")._value.get()
    store.refuse = True
    w.submit(points(0, 10))
    w.step()
    assert w.spool.points == 0
    assert metrics.TELEMETRY_DROPPED.labels("refused")._value.get() == before + 10


def test_a_full_buffer_overflows_to_the_spool_not_to_the_store(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    w = writer(store, clock, tmp_path, buffer_points=20)
    w.submit(points(0, 45))  # nobody flushed: 25 over the bound
    assert store.attempts == 0
    assert w.spool.points == 30  # whole batches, the oldest first
    while w.step():
        pass
    clock.now += 1.0
    while w.step():
        pass
    assert store.times() == list(range(45))


def test_spool_bound_drops_the_oldest_with_a_metric(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    one_batch = len(b"\n".join(b"heartbeat,device_id=d seen=1i %d" % t for t in range(10, 20)))
    w = writer(store, clock, tmp_path, spool_bytes=3 * one_batch)
    before = metrics.TELEMETRY_DROPPED.labels("spool_full")._value.get()
    store.down = True
    for start in range(10, 60, 10):
        w.submit(points(start, 10))
        w.step()
    assert w.spool.points == 30
    assert metrics.TELEMETRY_DROPPED.labels("spool_full")._value.get() == before + 20
    store.down = False
    clock.now += 5.0
    while w.step():
        pass
    assert store.times() == list(range(30, 60))


def test_stop_writes_what_is_left_or_spools_it(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 5))
    w.stop()
    assert store.times() == list(range(5))
    store.down = True
    w = writer(store, clock, tmp_path)
    w.submit(points(5, 15))
    w.stop()
    assert Spool(tmp_path, 1 << 20).points == 15  # for the next start


def test_spool_age(store: MemoryStore, clock: Clock, tmp_path: Path) -> None:
    w = writer(store, clock, tmp_path)
    assert w.spool_age_s() == 0
    store.down = True
    w.submit([Point("heartbeat", {}, {"seen": 1}, 1_000_000)])
    clock.now += 1
    w.step()
    assert w.spool_age_s() == pytest.approx(clock.now + 1_000 - 1_000)


def test_the_flusher_thread_writes_without_being_asked(store: MemoryStore, tmp_path: Path) -> None:
    w = TelemetryWriter(store, Spool(tmp_path, 1 << 20), batch_size=10, flush_interval_s=0.05)
    w.start()
    try:
        w.submit(points(0, 3))  # less than a batch: written after the interval
        wait_until(lambda: store.times() == list(range(3)) or None, within_s=5)
        w.submit(points(3, 25))
        wait_until(lambda: store.times() == list(range(28)) or None, within_s=5)
    finally:
        w.stop()


def test_an_unforeseen_store_failure_keeps_the_batch(
    store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    w = writer(store, clock, tmp_path)
    original = store.write

    def broken(body: bytes) -> None:
        raise ValueError("a bug in a client library")

    store.write = broken  # type: ignore[method-assign]
    w.submit(points(0, 10))
    w.step()
    assert w.spool.points == 10
    store.write = original  # type: ignore[method-assign]
    clock.now += 5.0
    w.step()
    assert store.times() == list(range(10))


class HeldStore(MemoryStore):
    """A store whose write waits until the test lets it answer: a request in flight, its body
    sent. ``before_sending`` may hold it before that, as a slow send would."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = threading.Event()
        self.answer = threading.Event()
        self.before_sending: Callable[[], None] = lambda: None

    def write(self, body: bytes, on_sent: Callable[[], object] | None = None) -> None:
        self.before_sending()
        if on_sent is not None:
            on_sent()
        self.in_flight.set()
        assert self.answer.wait(5)
        super().write(body)


def step_while_held(w: TelemetryWriter, store: HeldStore) -> threading.Thread:
    """A step on a thread of its own, returned once its request is held in flight at the store
    and the next batch is ready (encoded meanwhile)."""
    stepping = threading.Thread(target=w.step)
    stepping.start()
    assert store.in_flight.wait(5)
    wait_until(lambda: w._ready is not None or None, within_s=5)
    return stepping


def test_the_next_batch_is_encoded_while_a_request_is_in_flight(
    clock: Clock, tmp_path: Path
) -> None:
    store = HeldStore()
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 25))
    # Taken from the buffer and encoded before the first request has answered.
    stepping = step_while_held(w, store)
    assert store.bodies == []
    store.answer.set()
    stepping.join(5)
    while w.step():
        pass
    clock.now += 1.0
    while w.step():
        pass
    assert store.times() == list(range(25))
    assert store.attempts == 3  # one request a batch


def test_the_next_batch_is_encoded_only_once_the_body_in_flight_is_out(
    clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding holds the GIL: begun while the sender is still sending, it would hold the
    request up."""
    store = HeldStore()
    store.answer.set()
    events: list[str] = []
    encoded_early = threading.Event()
    encode = writer_module._encoded

    def noted_encode(points: list[Point], place: int) -> object:
        events.append("encoded")
        encoded_early.set()
        return encode(points, place)

    def send_slowly() -> None:
        # Long enough for the flusher to encode the next batch, were it not waiting.
        encoded_early.clear()
        encoded_early.wait(0.3)
        events.append("sent")

    monkeypatch.setattr(writer_module, "_encoded", noted_encode)
    store.before_sending = send_slowly
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 20))
    assert w.step()  # the first batch encoded, sent, and then the second encoded
    assert events == ["encoded", "sent", "encoded"]
    assert w._ready is not None
    while w.step():
        pass
    assert store.times() == list(range(20))


def test_the_next_batch_is_encoded_even_when_the_request_fails_before_its_body_is_out(
    clock: Clock, tmp_path: Path
) -> None:
    store = MemoryStore()  # never tells that a body is out
    store.down = True
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 20))
    stepping = threading.Thread(target=w.step, daemon=True)  # were it to wait forever
    stepping.start()
    stepping.join(5)
    assert not stepping.is_alive()
    assert w._ready is not None
    assert w.spool.points == 10


def test_when_the_request_in_flight_fails_the_ready_batch_spools_behind_it(
    clock: Clock, tmp_path: Path
) -> None:
    store = HeldStore()
    store.answer.set()
    store.down = True
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 20))
    assert w.step()  # the first batch fails while the second is encoded
    assert w.step()  # the second joins the spool, behind the first
    assert store.attempts == 1
    assert w.spool.points == 20
    store.down = False
    clock.now += 5.0
    while w.step():
        pass
    assert store.times() == list(range(20))


def test_stop_writes_or_spools_the_ready_batch_first(clock: Clock, tmp_path: Path) -> None:
    store = HeldStore()
    store.answer.set()
    store.down = True
    w = writer(store, clock, tmp_path)
    w.submit(points(0, 25))
    w.step()  # first batch to the spool, the second ready
    w.stop()
    assert Spool(tmp_path, 1 << 20).points == 25
    store.down = False
    w = writer(store, clock, tmp_path)
    while w.step():
        pass
    assert store.times() == list(range(25))


def test_batches_spooled_by_an_overflow_meanwhile_stay_behind_the_one_in_flight(
    clock: Clock, tmp_path: Path
) -> None:
    store = HeldStore()
    store.down = True
    w = writer(store, clock, tmp_path, buffer_points=20)
    w.submit(points(0, 20))
    stepping = step_while_held(w, store)  # 0–9 in flight, 10–19 encoded meanwhile
    w.submit(points(20, 30))  # past the bound: 20–29 to the spool from here
    assert w.spool.points == 10
    store.answer.set()  # 0–9 fails
    stepping.join(5)
    while w.step():
        pass
    clock.now += 1.0
    while w.step():
        pass
    assert w.spool.points == 50
    store.down = False
    clock.now += 5.0
    while w.step():
        pass
    assert store.times() == list(range(50))  # all, once, in the order they were made
