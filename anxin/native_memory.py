"""Memory that Python's tracemalloc does not see, for /metrics (issue 17).

Read when Prometheus scrapes, never in between:

- ``anxin_sqlite_memory_bytes``: SQLite's own heap in this process, every connection's page
  cache, schema and prepared statements together (``sqlite3_memory_used()``). It is read from
  the libsqlite3 that Python's ``sqlite3`` module has loaded, found in ``/proc/self/maps``, so
  the figure is that library's and not another copy's. Two counters read: ~14 µs a scrape.
- ``anxin_sqlite_page_cache_bytes``: of it, the page caches (``sqlite3_status64()``), each
  connection's at most its ``cache_size`` (2 MiB by default), less while the database is smaller;
  not counted there are each cache's first pages, taken in one block (20 pages by default).
- ``anxin_malloc_bytes{state}``: glibc's allocator (``mallinfo2()``): ``in_use`` what it has
  handed out (SQLite's memory above, Python's objects of more than 512 bytes, the libraries');
  ``free`` what it keeps after ``free()`` and has not given back to the system. Python's small
  objects live in pymalloc's own arenas (mmap), in neither. Only when asked
  (ANXIN_DEBUG_MALLOC_METRICS): ``mallinfo2()`` walks the free lists under the allocator's
  lock, a microsecond with serve's few free chunks but 50 ms with 200,000 of them, and every
  thread's ``malloc`` waits meanwhile.

Where a figure cannot be read (SQLite built into Python, another C library) its gauge is not
exported rather than exported as 0.
"""

from __future__ import annotations

import ctypes
import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _MallInfo2(ctypes.Structure):
    # glibc's struct mallinfo2 (malloc.h, glibc 2.33 and later), every field a size_t.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def loaded_sqlite_library(maps: Path = Path("/proc/self/maps")) -> Path | None:
    """The libsqlite3 file mapped into this process (``sqlite3`` is imported above, so the
    one its C module links to), or None when there is none to see."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(maxsplit=5)[5:]
        if path and Path(path[0]).name.startswith("libsqlite3.so"):
            return Path(path[0])
    return None


class SqliteMemory(NamedTuple):
    used: int  # all of SQLite's heap
    page_cache: int  # of it, the connections' page caches


# sqlite3.h: sqlite3_status64()'s counter of page cache memory taken from the heap (as Python
# configures no SQLITE_CONFIG_PAGECACHE buffer, all pages beyond each cache's first block).
SQLITE_STATUS_PAGECACHE_OVERFLOW = 2


def sqlite_memory_reader() -> Callable[[], SqliteMemory] | None:
    """SQLite's heap and page caches, as Python's SQLite counts them; None if unreachable."""
    path = loaded_sqlite_library()
    if path is None:
        return None
    try:
        library = ctypes.CDLL(str(path))  # the loaded one: dlopen hands back its handle
        library.sqlite3_libversion.restype = ctypes.c_char_p
        memory_used, status64 = library.sqlite3_memory_used, library.sqlite3_status64
    except (OSError, AttributeError):
        return None
    # The same library as the module's, or its figure would be another copy's.
    if library.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        return None
    memory_used.restype = ctypes.c_int64
    memory_used.argtypes = []
    counter = ctypes.POINTER(ctypes.c_int64)
    status64.argtypes = [ctypes.c_int, counter, counter, ctypes.c_int]

    def read() -> SqliteMemory:
        current, highest = ctypes.c_int64(), ctypes.c_int64()
        status64(SQLITE_STATUS_PAGECACHE_OVERFLOW, ctypes.byref(current), ctypes.byref(highest), 0)
        return SqliteMemory(used=int(memory_used()), page_cache=current.value)

    return read


def malloc_info_reader() -> Callable[[], _MallInfo2] | None:
    """glibc's ``mallinfo2()``, or None on another C library (or a glibc before 2.33)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []
    return lambda: mallinfo2()


class NativeMemory(Collector):
    """The gauges, read at each scrape: one call into SQLite, and one into malloc if asked."""

    def __init__(self, *, malloc: bool) -> None:
        self.sqlite_memory = sqlite_memory_reader()
        self.malloc_info = malloc_info_reader() if malloc else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.sqlite_memory is not None:
            sqlite_memory = self.sqlite_memory()
            yield GaugeMetricFamily(
                "anxin_sqlite_memory_bytes",
                "SQLite's heap in this process: page caches, schemas, statements",
                value=sqlite_memory.used,
            )
            yield GaugeMetricFamily(
                "anxin_sqlite_page_cache_bytes",
                "Of SQLite's heap, its connections' page caches",
                value=sqlite_memory.page_cache,
            )
        if self.malloc_info is not None:
            info = self.malloc_info()
            by_state = GaugeMetricFamily(
                "anxin_malloc_bytes",
                "glibc malloc: in_use handed out (SQLite's included), free kept and not returned",
                labels=["state"],
            )
            by_state.add_metric(["in_use"], info.uordblks + info.hblkhd)
            by_state.add_metric(["free"], info.fordblks)
            yield by_state

    def names(self) -> tuple[str, ...]:
        return tuple(family.name for family in self.collect())


@functools.cache  # once a registry: run_service may run more than once in a process
def export_native_memory(
    *, malloc: bool = False, registry: CollectorRegistry = REGISTRY
) -> tuple[str, ...]:
    """Register the gauges this process can read on ``registry``; their names."""
    collector = NativeMemory(malloc=malloc)
    registry.register(collector)
    return collector.names()
