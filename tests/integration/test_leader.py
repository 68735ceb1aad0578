"""The scheduler's lock on a real PostgreSQL: one leader at a time, a bounded takeover, and a
leader that loses its lock's session steps down (its work is stopped) before leading again."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import Engine, text

from anxin.database import open_database
from anxin.leader import LeaderTiming, _LockSession, lock_engine, run_when_leader

pytestmark = pytest.mark.integration

FAST = LeaderTiming(retry_s=0.2, check_s=0.2, check_timeout_s=1.0, server_gives_up_s=3)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine, _ = open_database(postgres_url)
    yield engine
    engine.dispose()


class Worker:
    """Work that records when it runs; ``leading`` counts the leaders at this moment."""

    def __init__(self, name: str, log: list[str], leading: list[str]) -> None:
        self.name, self.log, self.leading = name, log, leading

    async def __call__(self, stop: asyncio.Event) -> None:
        self.leading.append(self.name)
        self.log.append(f"{self.name} leads ({len(self.leading)} leading)")
        try:
            await stop.wait()
        finally:
            self.leading.remove(self.name)
            self.log.append(f"{self.name} stops")


async def _until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.02)


def test_one_leads_and_the_other_takes_over_when_it_stops(engine: Engine) -> None:
    log: list[str] = []
    leading: list[str] = []

    async def scenario() -> float:
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(run_when_leader(engine, Worker("a", log, leading), stop_a, FAST))
        await _until(lambda: leading == ["a"])
        b = asyncio.create_task(run_when_leader(engine, Worker("b", log, leading), stop_b, FAST))
        await asyncio.sleep(1.0)  # b asks five times meanwhile
        assert leading == ["a"]
        stop_a.set()
        await a
        stopped = asyncio.get_running_loop().time()
        await _until(lambda: leading == ["b"])
        took = asyncio.get_running_loop().time() - stopped
        stop_b.set()
        await b
        return took

    took = asyncio.run(scenario())
    assert log == ["a leads (1 leading)", "a stops", "b leads (1 leading)", "b stops"]
    assert took < 2.0


def test_a_leader_whose_lock_session_ends_steps_down_then_leads_again(
    engine: Engine, postgres_url: str
) -> None:
    log: list[str] = []
    leading: list[str] = []

    def end_lock_sessions() -> int:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'anxin-scheduler-lock'"
            ).fetchone()
        return int(ended[0]) if ended else 0

    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(run_when_leader(engine, Worker("a", log, leading), stop, FAST))
        await _until(lambda: leading == ["a"])
        ended = await asyncio.to_thread(end_lock_sessions)
        await _until(lambda: "a stops" in log)
        await _until(lambda: leading == ["a"])
        stop.set()
        await task
        return ended

    assert asyncio.run(scenario()) == 1
    assert log == ["a leads (1 leading)", "a stops", "a leads (1 leading)", "a stops"]


def test_the_work_failing_is_not_taken_for_a_lost_lock(engine: Engine) -> None:
    async def failing(stop: asyncio.Event) -> None:
        raise RuntimeError("the scheduler broke")

    with pytest.raises(RuntimeError, match="the scheduler broke"):
        asyncio.run(run_when_leader(engine, failing, asyncio.Event(), FAST))


def test_the_timing_must_step_down_before_postgresql_frees_the_lock() -> None:
    with pytest.raises(ValueError, match="under server_gives_up_s"):
        LeaderTiming(check_s=5, check_timeout_s=5, server_gives_up_s=8)


def test_a_leader_whose_lock_check_goes_unanswered_steps_down(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut off from PostgreSQL (the check hangs, as on a dead link): the leader stops its work
    within ``check_timeout_s``, before PostgreSQL would give the lock to another."""
    log: list[str] = []
    leading: list[str] = []
    cut_off = threading.Event()
    original = _LockSession.still_held

    def still_held(self: _LockSession) -> bool:
        if cut_off.is_set():
            time.sleep(FAST.check_timeout_s + 1)  # no answer in time
        return original(self)

    monkeypatch.setattr(_LockSession, "still_held", still_held)

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(run_when_leader(engine, Worker("a", log, leading), stop, FAST))
        await _until(lambda: leading == ["a"])
        cut_off.set()
        loop = asyncio.get_running_loop()
        cut = loop.time()
        await _until(lambda: "a stops" in log, within_s=5)
        took = loop.time() - cut
        stop.set()
        await task
        return took

    took = asyncio.run(scenario())
    assert took <= FAST.check_s + FAST.check_timeout_s + 0.5
    assert took < FAST.server_gives_up_s


def test_the_lock_session_asks_postgresql_to_give_up_on_a_dead_link(engine: Engine) -> None:
    locks = lock_engine(engine, LeaderTiming())
    try:
        with locks.connect() as connection:
            shown = {
                name: connection.execute(text(f"SHOW {name}")).scalar()
                for name in ("tcp_user_timeout", "tcp_keepalives_idle", "application_name")
            }
    finally:
        locks.dispose()
    assert shown == {
        "tcp_user_timeout": "8000",  # ms
        "tcp_keepalives_idle": "2",  # s
        "application_name": "anxin-scheduler-lock",
    }
