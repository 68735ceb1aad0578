"""Where memory goes, for whoever hunts a leak: ``ANXIN_DEBUG_TRACEMALLOC_FRAMES=N`` (N > 0)
starts ``tracemalloc`` with N frames a traceback; each SIGUSR1 then writes, in
``{var_dir}/tracemalloc/``, a snapshot (``NNN.snapshot``, for ``tracemalloc.Snapshot.load``) and
what grew since the first one, by traceback (``NNN-growth.txt``). Tracing costs CPU and memory:
a debugging switch, off in production."""

from __future__ import annotations

import gc
import linecache
import tracemalloc
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

TOP = 40
_LINECACHE = tracemalloc.Filter(False, linecache.__file__, all_frames=True)


class MemoryTrace:
    def __init__(self, folder: Path, frames: int) -> None:
        self.folder, self.frames = folder, frames
        self.first: tracemalloc.Snapshot | None = None
        self.taken = 0

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tracemalloc.start(self.frames)
        log.warning("memtrace.started", frames=self.frames, folder=str(self.folder))

    def stop(self) -> None:
        tracemalloc.stop()
        self.first = None

    def snapshot(self) -> Path:
        """A snapshot on disk, and what grew since the first, largest first."""
        gc.collect()
        # Not the tracer's own: formatting a growth report fills linecache with the source
        # of every file it names (6 MiB seen in a soak), which the next comparison would show.
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), _LINECACHE]
        )
        self.taken += 1
        path = self.folder / f"{self.taken:03d}.snapshot"
        snapshot.dump(str(path))
        traced, peak = tracemalloc.get_traced_memory()
        lines = [f"snapshot {self.taken}: traced {traced / 2**20:.1f} MiB, peak {peak / 2**20:.1f}"]
        if self.first is None:
            self.first = snapshot
        else:
            lines.append(f"growth since snapshot 1, by traceback (top {TOP}):")
            for stat in snapshot.compare_to(self.first, "traceback")[:TOP]:
                lines.append(
                    f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks"
                    f" (now {stat.size / 1024:.1f} KiB in {stat.count} blocks)"
                )
                lines += [f"    {line}" for line in stat.traceback.format()]
        (self.folder / f"{self.taken:03d}-growth.txt").write_text("\n".join(lines) + "\n")
        log.warning("memtrace.snapshot", path=str(path), traced_mib=round(traced / 2**20, 1))
        return path


def memory_trace(var_dir: Path, frames: int) -> MemoryTrace | None:
    if frames <= 0:
        return None
    trace = MemoryTrace(var_dir / "tracemalloc", frames)
    trace.start()
    return trace
