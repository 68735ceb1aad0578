"""The leak hunter's switch (ANXIN_DEBUG_TRACEMALLOC_FRAMES): snapshots, and what grew."""

from __future__ import annotations

import linecache
import tracemalloc
from pathlib import Path

from anxin.memtrace import memory_trace

KEPT: list[bytes] = []


def test_off_by_default(tmp_path: Path) -> None:
    assert memory_trace(tmp_path, 0) is None
    assert not (tmp_path / "tracemalloc").exists()


def test_each_snapshot_is_written_with_what_grew_since_the_first(tmp_path: Path) -> None:
    trace = memory_trace(tmp_path, 3)
    assert trace is not None
    try:
        first = trace.snapshot()
        KEPT.extend(bytes(1000) + bytes([n % 256]) for n in range(2000))  # ~2 MB kept
        second = trace.snapshot()
    finally:
        trace.stop()
        KEPT.clear()
    assert not tracemalloc.is_tracing()
    assert first.name == "001.snapshot"
    assert second.name == "002.snapshot"
    assert tracemalloc.Snapshot.load(str(second)).traces
    growth = (tmp_path / "tracemalloc" / "002-growth.txt").read_text()
    assert "growth since snapshot 1" in growth
    # The biggest growth is ours, and names this file.
    top = growth.split("\n\n")[1]
    assert "test_memtrace.py" in top
    assert "KiB" in top


def test_the_tracers_own_linecache_is_left_out(tmp_path: Path) -> None:
    trace = memory_trace(tmp_path, 3)
    assert trace is not None
    try:
        trace.snapshot()
        KEPT.append(bytes(1000))
        linecache.clearcache()  # so that formatting the growth reads the sources again
        trace.snapshot()
        third = trace.snapshot()
    finally:
        trace.stop()
        KEPT.clear()
    traces = tracemalloc.Snapshot.load(str(third)).traces
    assert not any(f.filename == linecache.__file__ for t in traces for f in t.traceback)
