"""A bounded spool on disk for batches InfluxDB could not take yet.

One file per batch, named ``{sequence}-{points}-{oldest_ms}.lp`` so that what the spool holds
is known from a directory listing alone (a restart reads no file). Files are written whole
(a temporary name, fsync, rename), so a crash leaves either the batch or nothing. Batches come
out in the order they went in. At its bound the oldest batches are dropped: the newest
telemetry is the most useful, and a spool that outgrew its disk would threaten the alert
store beside it.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import structlog

from ingest.telemetry.points import EncodedBatch

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(\d{16})-(\d+)-(-?\d+)\.lp$")


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    sequence: int
    points: int
    oldest_ms: int
    size: int

    @property
    def name(self) -> str:
        return f"{self.sequence:016d}-{self.points}-{self.oldest_ms}.lp"


@dataclass(frozen=True, slots=True)
class Dropped:
    """Batches the bound pushed out: how many points, and the oldest point's time."""

    points: int
    oldest_ms: int


class Spool:
    """Thread-safe: the ingest writer thread may spool an overflow while the flusher drains."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("the spool needs room for at least one byte")
        self._folder, self._max_bytes = folder, max_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.tmp"):  # a write a crash interrupted
            leftover.unlink(missing_ok=True)
        found = []
        for path in folder.iterdir():
            match = _NAME.match(path.name)
            if match is not None:
                sequence, points, oldest = map(int, match.groups())
                found.append(SpooledBatch(sequence, points, oldest, path.stat().st_size))
        self._batches = deque(sorted(found, key=lambda b: b.sequence))
        self._next = self._batches[-1].sequence + 1 if self._batches else 0
        self._bytes = sum(b.size for b in self._batches)
        self._points = sum(b.points for b in self._batches)

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def points(self) -> int:
        return self._points

    @property
    def size(self) -> int:
        return self._bytes

    @property
    def batches(self) -> int:
        return len(self._batches)

    def oldest_point_ms(self) -> int | None:
        with self._lock:
            return min((b.oldest_ms for b in self._batches), default=None)

    def reserve(self) -> int:
        """A place in the order for a batch that may be spooled later (``EncodedBatch.place``):
        ahead of those spooled after this call. A place never used is simply skipped."""
        with self._lock:
            self._next += 1
            return self._next - 1

    def append(self, batch: EncodedBatch) -> Dropped | None:
        """Keep ``batch`` at its reserved place, else behind the others; drop the oldest ones
        if the bound needs it.

        A batch larger than the whole bound is dropped itself."""
        size = len(batch.body)
        if size > self._max_bytes:
            return Dropped(batch.points, batch.oldest_ms)
        with self._lock:
            if batch.place is None:
                sequence, self._next = self._next, self._next + 1
            else:
                sequence = batch.place
            entry = SpooledBatch(sequence, batch.points, batch.oldest_ms, size)
            temporary = self._folder / (entry.name + ".tmp")
            with temporary.open("wb") as file:
                file.write(batch.body)
                file.flush()
                os.fsync(file.fileno())
            temporary.rename(self._folder / entry.name)
            # Nearly always at the end; a reserved place is among the last few.
            index = len(self._batches)
            while index and self._batches[index - 1].sequence > sequence:
                index -= 1
            self._batches.insert(index, entry)
            self._bytes += size
            self._points += entry.points
            return self._shrink()

    def peek(self) -> tuple[SpooledBatch, bytes] | None:
        """The oldest batch and its body, left in place until ``remove``."""
        with self._lock:
            while self._batches:
                entry = self._batches[0]
                try:
                    return entry, (self._folder / entry.name).read_bytes()
                except FileNotFoundError:  # removed by hand: forget it
                    self._forget(self._batches.popleft())
            return None

    def remove(self, entry: SpooledBatch) -> None:
        """Forget ``entry`` (once written); a no-op if the bound dropped it meanwhile."""
        with self._lock:
            if self._batches and self._batches[0] == entry:
                self._batches.popleft()
                self._forget(entry)

    def _shrink(self) -> Dropped | None:
        points, oldest = 0, None
        while self._bytes > self._max_bytes and len(self._batches) > 1:
            entry = self._batches.popleft()
            self._forget(entry)
            points += entry.points
            oldest = entry.oldest_ms if oldest is None else min(oldest, entry.oldest_ms)
        return Dropped(points, oldest) if oldest is not None else None

    def _forget(self, entry: SpooledBatch) -> None:
        (self._folder / entry.name).unlink(missing_ok=True)
        self._bytes -= entry.size
        self._points -= entry.points
