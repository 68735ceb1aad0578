"""The [vitals] rule's runs in memory are bounded (issue 17): a device never heard from again
does not keep its run for ever, and no more than ``limit`` devices are kept, while a run
still outlives the gap between a watch's readings. On an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from alerting.engine import VitalRun
from ingest.vital_memory import VITAL_RUNS_IDLE, VitalMemory, idle_for

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def high(readings: int) -> dict[str, VitalRun]:
    return {"heart_rate": VitalRun(readings=readings, since=T0, value=150)}


def forgotten(reason: str) -> float:
    value = REGISTRY.get_sample_value("anxin_ingest_vital_runs_forgotten_total", {"reason": reason})
    return value or 0.0


def test_a_run_outlives_the_gap_between_readings_and_is_forgotten_once_idle() -> None:
    clock = Clock()
    memory = VitalMemory(clock, idle=timedelta(hours=1))
    memory.keep({"w1": high(1)})
    clock.advance(minutes=59)
    assert memory.get("w1") == high(1)  # a reading 59 min later still counts on the run
    memory.keep({"w1": high(2)})
    before = forgotten("idle")
    clock.advance(minutes=60)
    assert memory.get("w1") == {}  # idle for the hour: a new reading starts a new run
    memory.keep({"w2": high(1)})  # any later batch drops it
    assert len(memory) == 1
    assert forgotten("idle") == before + 1
    assert REGISTRY.get_sample_value("anxin_ingest_vital_runs") == 1


def test_back_in_range_forgets_the_run_at_once() -> None:
    memory = VitalMemory(Clock())
    memory.keep({"w1": high(1), "w2": high(1)})
    memory.keep({"w1": {}})
    assert (memory.get("w1"), len(memory)) == ({}, 1)


def test_beyond_the_limit_the_least_recently_added_to_is_forgotten() -> None:
    clock = Clock()
    memory = VitalMemory(clock, limit=3)
    before = forgotten("limit")
    for device in ("w1", "w2", "w3"):
        memory.keep({device: high(1)})
        clock.advance(seconds=1)
    memory.keep({"w1": high(2)})  # w1 added to again: w2 is now the oldest
    memory.keep({"w4": high(1), "w5": high(1)})
    assert len(memory) == 3
    assert [memory.get(d) != {} for d in ("w1", "w2", "w3", "w4", "w5")] == [
        True,
        False,
        False,
        True,
        True,
    ]
    assert forgotten("limit") == before + 2


def test_a_fleet_that_goes_quiet_leaves_nothing_behind() -> None:
    clock = Clock()
    memory = VitalMemory(clock)
    for batch in range(100):  # 10,000 devices each with a run, never heard from again
        memory.keep({f"w{batch}-{i}": high(1) for i in range(100)})
        clock.advance(seconds=10)
    assert len(memory) == 10_000
    clock.advance(hours=1)
    memory.keep({})
    assert len(memory) == 0


def test_the_idle_bound_is_longer_than_the_rules_span() -> None:
    assert idle_for(300) == VITAL_RUNS_IDLE
    assert idle_for(86_400) == timedelta(days=2)
