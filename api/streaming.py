"""The alert stream's machinery: following the timeline table as a log, for any number of SSE
connections, across processes.

The database is the source of truth: every change to an alert is a row of ``alert_events``
with an increasing id, whichever process (ingest, scheduler, an API) wrote it. A connection
reads the rows after the last id it sent. One ``TimelineWatch`` per process tells connections
when there is something new: it reads the newest id every ``poll_s`` and at once when this
process's change feed says it changed an alert, so N connections cost one small query per
interval, not N. Connections that want the same rows at the same moment (all those that are
live, after a change) share one read: the watch runs it once per "generation" (a new one at
each poll and each change), so a change costs one query however many dispatchers watch.

Ids are handed out when a row is inserted but become visible when its transaction commits, and
on PostgreSQL two transactions may commit out of order. So a connection that sees ids 10 and 12
remembers 11 as a gap and looks for it again for ``gap_grace_s`` (a rolled-back transaction's
id never comes); a late row is sent when it appears, after higher ids.

An event's SSE ``id`` is the connection's position after it (``TimelineCursor.position``): the
row's id when nothing below it is missing, else the highest id read, ``~`` and the ids still
looked for (``12~11`` , ``40~31-33,38``). A client that reconnects, to this process or to any
other API replica (they share the database), sends it back as ``Last-Event-ID`` and resumes
exactly there: the rows it was waiting for still come, and none it had comes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session, sessionmaker

from alerting.feed import AlertFeed
from alerting.store import latest_event_id

log = structlog.get_logger(__name__)

STREAMS_OPEN = Gauge("anxin_sse_streams", "Alert event streams open in this process")
STREAMS_REFUSED = Counter(
    "anxin_sse_streams_refused_total", "Alert event streams refused (limit reached)"
)
EVENTS_SENT = Counter("anxin_sse_events_total", "Alert events sent on streams")
STREAMS_RESYNCED = Counter(
    "anxin_sse_resyncs_total", "Streams resumed too far behind: older events skipped"
)

# Gaps a connection remembers at most: a bigger jump (a large transaction rolled back) is
# not waited for beyond the newest ones.
MAX_GAPS = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSettings:
    keepalive_s: float = 15.0
    poll_s: float = 0.5
    max_streams: int = 200
    # Resuming with Last-Event-ID: at most this many timeline rows are replayed.
    backlog: int = 1000
    # Rows read at once per connection: what a connection holds in memory at most.
    batch: int = 200
    gap_grace_s: float = 10.0
    # A client that takes longer than this to take one event (a stalled socket) is dropped.
    send_timeout_s: float = 30.0


class InvalidPositionError(ValueError):
    """A ``Last-Event-ID`` that is not a stream position."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamPosition:
    """Where a client is: the highest id it read and the ids below it it still waits for."""

    after: int
    gaps: tuple[int, ...] = ()

    def token(self) -> str:
        """``12``, or ``12~11``, or ``40~31-33,38`` (ranges of consecutive ids)."""
        if not self.gaps:
            return str(self.after)
        ranges: list[str] = []
        start = previous = self.gaps[0]
        for gap in (*self.gaps[1:], None):
            if gap is not None and gap == previous + 1:
                previous = gap
                continue
            ranges.append(str(start) if start == previous else f"{start}-{previous}")
            if gap is not None:
                start = previous = gap
        return f"{self.after}~{','.join(ranges)}"

    @classmethod
    def parse(cls, token: str) -> StreamPosition:
        """The inverse of ``token``; gaps only in the window a cursor keeps (``MAX_GAPS``
        below ``after``), so a client cannot make a read ask for more than that."""
        head, tilde, tail = token.strip().partition("~")
        after = _id(head, token)
        if tilde and not tail:
            raise InvalidPositionError(f"not a stream position: {token[:40]!r}")
        gaps: set[int] = set()
        for part in tail.split(",") if tail else ():
            first, _, last = part.partition("-")
            low = _id(first, token)
            high = _id(last, token) if last else low
            if not after - MAX_GAPS <= low <= high < after:
                raise InvalidPositionError(f"not a stream position: {token[:40]!r}")
            gaps.update(range(low, high + 1))
        return cls(after=after, gaps=tuple(sorted(gaps)))


def _id(text: str, token: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise InvalidPositionError(f"not a stream position: {token[:40]!r}")
    return int(text)


class TimelineCursor:
    """Where one connection is in the timeline: the highest id read, and the missing ids below
    it that a transaction still in flight may yet commit."""

    def __init__(
        self,
        after: int,
        *,
        gap_grace_s: float,
        gaps: Iterable[int] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.after = after
        self._grace, self._clock = gap_grace_s, clock
        # Resumed with gaps: looked for again, for a whole grace period from now.
        now = clock()
        self._gaps: dict[int, float] = {gap: now for gap in gaps if gap < after}

    @property
    def gaps(self) -> list[int]:
        return sorted(self._gaps)

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(after=self.after, gaps=tuple(self.gaps))

    def advance(self, ids: Iterable[int]) -> None:
        """Take note of the ids just read (ascending, as the query returns them)."""
        now = self._clock()
        for event_id in ids:
            if event_id in self._gaps:
                del self._gaps[event_id]
            elif event_id > self.after:
                missing = range(max(self.after + 1, event_id - MAX_GAPS), event_id)
                self._gaps.update(dict.fromkeys(missing, now))
                self.after = event_id
        for event_id, since in list(self._gaps.items()):
            if now - since > self._grace:
                del self._gaps[event_id]
        while len(self._gaps) > MAX_GAPS:
            del self._gaps[min(self._gaps)]


class StreamsBusy(Exception):  # noqa: N818 - named for what it says
    """The process serves as many streams as it may."""


class StreamSlot:
    """One stream's place; released once, however many paths lead to the release."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


T = TypeVar("T")


class TimelineWatch:
    """One per process: the newest timeline id, for streams to wait on.

    It runs only while at least one stream listens, so an idle API costs nothing.
    """

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self.latest = 0
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None
        # Reads shared by connections, for the current generation only.
        self._generation = 0
        self._reads: dict[tuple[int, Hashable], asyncio.Future[Any]] = {}

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def close(self) -> None:
        """The process is stopping: every stream ends (on this event loop)."""
        self._closing.set()
        self._wake()

    def open_stream(self, sessions: sessionmaker[Session], feed: AlertFeed) -> StreamSlot:
        """A place for one more stream (StreamsBusy past ``max_streams``); release it after."""
        if self._listeners >= self.settings.max_streams:
            STREAMS_REFUSED.inc()
            raise StreamsBusy(f"too many alert streams open (at most {self.settings.max_streams})")
        self._listeners += 1
        STREAMS_OPEN.inc()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(sessions, feed), name="timeline-watch")
        return StreamSlot(self._release)

    def _release(self) -> None:
        self._listeners -= 1
        STREAMS_OPEN.dec()
        if self._listeners == 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    async def wait(self, beyond: int, at_most_s: float) -> None:
        """Until the newest id is above ``beyond``, the watch closes, or ``at_most_s`` pass."""
        changed = self._changed
        if self.latest > beyond or self.closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), at_most_s)

    async def rest(self, at_most_s: float) -> None:
        """Wait ``at_most_s``, or less if the watch closes (the process stops)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), at_most_s)

    async def shared_read(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()`` on a worker thread, once for all who ask with the same ``key`` in this
        generation; a later generation reads again (the database may have moved on)."""
        slot = (self._generation, key)
        future = self._reads.get(slot)
        if future is None:
            future = asyncio.ensure_future(anyio.to_thread.run_sync(read))
            self._reads[slot] = future
            # A failed read is not kept: the next caller tries again.
            future.add_done_callback(
                lambda done: (
                    self._reads.pop(slot, None) if done.cancelled() or done.exception() else None
                )
            )
        # Shielded: one connection going away does not cancel the read the others wait for.
        result: T = await asyncio.shield(future)
        return result

    def _next_generation(self) -> None:
        self._generation += 1
        self._reads = {k: f for k, f in self._reads.items() if not f.done()}

    def _wake(self) -> None:
        self._next_generation()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _follow(self, sessions: sessionmaker[Session], feed: AlertFeed) -> None:
        def read() -> int:
            with sessions() as session:
                return latest_event_id(session)

        failing = False
        async with feed.listen() as news:
            while not self.closing:
                try:
                    latest = await anyio.to_thread.run_sync(read)
                    if failing:
                        log.info("sse.watch_recovered")
                    failing = False
                except Exception as exc:  # the database is away: streams wait, and retry
                    if not failing:  # once per outage, not every poll
                        log.warning("sse.watch_failed", error=repr(exc)[:300])
                    failing, latest = True, self.latest
                if latest != self.latest:
                    self.latest = latest
                    self._wake()
                else:
                    self._next_generation()  # connections looking for gaps read anew
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.get(), self.settings.poll_s)
                while not news.empty():  # a burst of changes: one read
                    news.get_nowait()
