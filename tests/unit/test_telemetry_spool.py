"""The spool: bounded, in order, kept across a restart, the oldest dropped at the bound."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ingest.telemetry.points import EncodedBatch
from ingest.telemetry.spool import Dropped, Spool


def batch(n: int, size: int = 100) -> EncodedBatch:
    body = f"m f={n} {n}".encode().ljust(size, b" ")
    return EncodedBatch(body=body, points=10, oldest_ms=1000 + n)


def drain(spool: Spool) -> list[bytes]:
    bodies = []
    while (head := spool.peek()) is not None:
        entry, body = head
        bodies.append(body)
        spool.remove(entry)
    return bodies


def test_batches_come_out_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    for n in range(5):
        assert spool.append(batch(n)) is None
    assert (spool.batches, spool.points, spool.size) == (5, 50, 500)
    assert spool.oldest_point_ms() == 1000
    assert drain(spool) == [batch(n).body for n in range(5)]
    assert (spool.batches, spool.points, spool.size) == (0, 0, 0)
    assert spool.oldest_point_ms() is None
    assert list(tmp_path.iterdir()) == []


def test_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    for n in range(3):
        spool.append(batch(n))
    (tmp_path / "0000000000000007-10-5.lp.tmp").write_bytes(b"half a batch")  # a crash mid-write
    again = Spool(tmp_path, max_bytes=10_000)
    assert (again.batches, again.points, again.size) == (3, 30, 300)
    again.append(batch(3))
    assert drain(again) == [batch(n).body for n in range(4)]
    assert list(tmp_path.iterdir()) == []


def test_the_oldest_batches_are_dropped_at_the_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=350)
    for n in range(3):
        assert spool.append(batch(n)) is None
    assert spool.append(batch(3)) == Dropped(points=10, oldest_ms=1000)
    assert spool.append(batch(4, size=250)) == Dropped(points=20, oldest_ms=1001)
    assert spool.size <= 350
    assert drain(spool) == [batch(3).body, batch(4, size=250).body]


def test_a_batch_larger_than_the_bound_is_dropped_itself(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=150)
    spool.append(batch(0))
    assert spool.append(batch(1, size=200)) == Dropped(points=10, oldest_ms=1001)
    assert drain(spool) == [batch(0).body]


def test_a_batch_deleted_by_hand_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(batch(0))
    spool.append(batch(1))
    next(tmp_path.glob("0000000000000000-*")).unlink()
    assert drain(spool) == [batch(1).body]
    assert spool.points == 0


def test_needs_room(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        Spool(tmp_path, max_bytes=0)


def test_a_reserved_place_keeps_a_batch_ahead_of_later_ones_across_a_restart(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append(batch(0))
    place = spool.reserve()  # batch 1 left the buffer; 2 and 3 are spooled before it
    unused = spool.reserve()  # written without the spool: its place is skipped
    spool.append(batch(2))
    spool.append(batch(3))
    spool.append(dataclasses.replace(batch(1), place=place))
    assert unused != place
    expected = [batch(n).body for n in range(4)]
    assert drain(Spool(tmp_path, max_bytes=10_000)) == expected
