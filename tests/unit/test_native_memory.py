"""The native memory gauges read real figures of this process, which move with its use."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from anxin.native_memory import (
    export_native_memory,
    loaded_sqlite_library,
    malloc_info_reader,
    sqlite_memory_reader,
)

ROWS = [("x" * 500,) for _ in range(20_000)]  # ~10 MB of pages


def _filled_connection() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.executemany("INSERT INTO t VALUES (?)", ROWS)
    return connection


def test_the_library_is_the_one_mapped_for_pythons_sqlite3() -> None:
    path = loaded_sqlite_library()
    assert path is not None
    assert path.name.startswith("libsqlite3.so")
    assert str(path) in Path("/proc/self/maps").read_text()


def test_no_library_when_none_is_mapped(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 00000000 08:01 42 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert loaded_sqlite_library(maps) is None
    assert loaded_sqlite_library(tmp_path / "absent") is None


def test_sqlite_memory_grows_with_a_page_cache_and_falls_when_it_is_closed() -> None:
    read = sqlite_memory_reader()
    assert read is not None
    before = read()
    connection = _filled_connection()  # an in-memory database: its pages are all cached
    filled = read()
    connection.close()
    after = read()
    assert filled.used - before.used > 5_000_000
    assert filled.page_cache - before.page_cache > 5_000_000
    assert filled.page_cache <= filled.used
    assert filled.used - after.used > 5_000_000
    assert filled.page_cache - after.page_cache > 5_000_000


def test_malloc_in_use_counts_what_is_handed_out() -> None:
    info = malloc_info_reader()
    assert info is not None
    before = info()
    # Mapped (hblkhd) or from the heap (uordblks): glibc raises its mmap threshold after a
    # mapped chunk is freed, so in a process that did so before, 8 MiB come from the heap.
    block = bytearray(8 * 1024 * 1024)
    during = info()
    del block
    after = info()

    def in_use(reading: Any) -> int:
        return int(reading.uordblks + reading.hblkhd)

    assert in_use(during) - in_use(before) >= 8_000_000
    assert in_use(during) - in_use(after) >= 8_000_000


def test_the_gauges_are_exported_once_and_read_when_scraped() -> None:
    registry = CollectorRegistry()
    names = export_native_memory(malloc=True, registry=registry)
    assert export_native_memory(malloc=True, registry=registry) == names  # registered once
    assert names == (
        "anxin_sqlite_memory_bytes",
        "anxin_sqlite_page_cache_bytes",
        "anxin_malloc_bytes",
    )
    sqlite_before = registry.get_sample_value("anxin_sqlite_memory_bytes")
    connection = _filled_connection()
    sqlite_filled = registry.get_sample_value("anxin_sqlite_memory_bytes")
    in_use = registry.get_sample_value("anxin_malloc_bytes", {"state": "in_use"})
    free = registry.get_sample_value("anxin_malloc_bytes", {"state": "free"})
    connection.close()
    assert sqlite_before is not None
    assert sqlite_filled is not None
    assert sqlite_filled - sqlite_before > 5_000_000
    # SQLite allocates with malloc: its heap is part of what malloc has handed out.
    assert in_use is not None
    assert in_use > sqlite_filled
    assert free is not None
    assert free >= 0


def test_malloc_is_read_only_when_asked() -> None:
    registry = CollectorRegistry()
    assert export_native_memory(registry=registry) == (
        "anxin_sqlite_memory_bytes",
        "anxin_sqlite_page_cache_bytes",
    )
    assert registry.get_sample_value("anxin_malloc_bytes", {"state": "in_use"}) is None
