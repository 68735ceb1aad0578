"""Exactly one scheduler leads at a time: on PostgreSQL, whoever holds an advisory lock.

The lock is held by a database session of its own (not one of the pool's). The takeover is
bounded:

- a leader that dies (kill -9, a crash) takes its TCP connection with it; PostgreSQL ends the
  session at once and the lock is free. A standby asks for it every ``retry_s`` (2 s), and a
  new leader starts its first pass at once: it leads within ``retry_s`` + a connect;
- a leader that is alive but cut off from PostgreSQL (a dead link, a host that froze): the
  lock's session asks PostgreSQL to give up on an unanswered connection within
  ``server_gives_up_s`` (``tcp_user_timeout`` and keepalives, set for that session only), and
  the leader checks its lock every ``check_s``; a check unanswered within ``check_timeout_s``,
  or the lock found gone (PostgreSQL restarted), and it steps down: its work is stopped and it
  becomes a standby again. It steps down before PostgreSQL can hand the lock to another.

The lock is a courtesy, not the guarantee: every deadline the leader fires is a conditional
UPDATE that re-checks what made it due (alerting/escalation.py, the outbox's lease), so two
leaders for a moment still fire nothing twice. Nothing is lost either: the deadlines are
derived from stored facts, so the new leader's first pass fires whatever the old one had not.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

log = structlog.get_logger(__name__)

# Any number that is ours: 12349, the hotline.
SCHEDULER_LOCK = 12349

LEADING = Gauge("anxin_scheduler_leading", "1 while this process leads the scheduler, else 0")
STEPPED_DOWN = Counter(
    "anxin_scheduler_stepped_down_total",
    "Times this leader gave up the lead: its lock unanswered or lost",
)

Work = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class LeaderTiming:
    """How quickly a standby takes over (see the module's docstring)."""

    retry_s: float = 2.0
    check_s: float = 2.0
    check_timeout_s: float = 3.0
    server_gives_up_s: int = 8

    def __post_init__(self) -> None:
        # The leader must have stepped down before PostgreSQL frees its lock.
        if self.check_s + self.check_timeout_s >= self.server_gives_up_s:
            raise ValueError("check_s + check_timeout_s must be under server_gives_up_s")


async def run_when_leader(
    engine: Engine,
    work: Work,
    stop: asyncio.Event,
    timing: LeaderTiming | None = None,
) -> None:
    """Run ``work`` while this process holds the scheduler lock, until ``stop`` (SQLite: one
    host, one process by design, so no lock is needed)."""
    if engine.dialect.name != "postgresql":
        LEADING.set(1)
        try:
            await work(stop)
        finally:
            LEADING.set(0)
        return
    timing = timing or LeaderTiming()
    locks = lock_engine(engine, timing)
    try:
        standing_by = False
        while not stop.is_set():
            session = await _take_lock(locks)
            if session is None:
                if not standing_by:
                    log.info("scheduler.standing_by", note="another process leads")
                    standing_by = True
                await _wait(stop, timing.retry_s)
                continue
            try:
                log.info("scheduler.leading")
                standing_by = False
                LEADING.set(1)
                await _lead(session, work, stop, timing)
            finally:
                LEADING.set(0)
                session.close_soon()  # stepped down or stopped: a fresh session next time
    finally:
        locks.dispose()


def lock_engine(engine: Engine, timing: LeaderTiming) -> Engine:
    """Sessions for the lock: never pooled (the lock belongs to the session), and both ends
    give up on an unanswered connection within ``server_gives_up_s``."""
    gives_up_ms = timing.server_gives_up_s * 1000
    keepalive = {
        "keepalives": 1,
        "keepalives_idle": 2,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": gives_up_ms,
        "connect_timeout": max(2, int(timing.retry_s) + 1),
    }
    server_side = (
        f"-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 "
        f"-c tcp_user_timeout={gives_up_ms} -c application_name=anxin-scheduler-lock"
    )
    return create_engine(
        engine.url, poolclass=NullPool, connect_args={**keepalive, "options": server_side}
    )


class _LockSession:
    """The lock's database session; one statement at a time, from worker threads."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._busy = threading.Lock()

    def try_lock(self) -> bool:
        with self._busy:
            held = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK}
            ).scalar()
            self._connection.commit()  # no transaction left open on the lock's session
            return bool(held)

    def still_held(self) -> bool:
        with self._busy:
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objid = :key"
                ),
                {"key": SCHEDULER_LOCK},
            ).scalar()
            self._connection.commit()
            return bool(held)

    def close(self) -> None:
        with self._busy, contextlib.suppress(Exception):
            # The lock belongs to the session: end it (never hand it back to a pool).
            self._connection.invalidate()
            self._connection.close()

    def close_soon(self) -> None:
        """Not awaited: a check still waiting on a dead link holds the session until its TCP
        timeout (``server_gives_up_s``); a thread of its own waits that out, then closes."""
        threading.Thread(target=self.close, name="scheduler-lock-close", daemon=True).start()


async def _take_lock(locks: Engine) -> _LockSession | None:
    """A session holding the lock, or None (another leads, or PostgreSQL is away)."""
    try:
        session = _LockSession(await asyncio.to_thread(locks.connect))
    except Exception as exc:  # PostgreSQL away: keep asking
        log.warning("scheduler.lock_unreachable", error=type(exc).__name__)
        return None
    try:
        if await asyncio.to_thread(session.try_lock):
            return session
    except Exception as exc:
        log.warning("scheduler.lock_unreachable", error=type(exc).__name__)
    session.close_soon()
    return None


async def _lead(
    session: _LockSession, work: Work, stop: asyncio.Event, timing: LeaderTiming
) -> None:
    """Run ``work`` until ``stop``, or until the lock is lost (then stop the work and return)."""
    leading = asyncio.Event()  # set: the work stops
    task = asyncio.create_task(work(leading), name="scheduler-leader-work")
    try:
        while not stop.is_set() and not task.done():
            await _wait_any(stop, task, timing.check_s)
            if stop.is_set() or task.done():
                break
            try:
                held = await asyncio.wait_for(
                    asyncio.to_thread(session.still_held), timing.check_timeout_s
                )
            except Exception as exc:  # unanswered or broken: PostgreSQL may free the lock
                log.error("scheduler.stepping_down", reason="lock unanswered", error=repr(exc))
                STEPPED_DOWN.inc()
                break
            if not held:
                log.error("scheduler.stepping_down", reason="lock lost")
                STEPPED_DOWN.inc()
                break
    finally:
        leading.set()
        await task  # the work's own failure ends the process, as before


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _wait_any(stop: asyncio.Event, task: asyncio.Task[None], seconds: float) -> None:
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({stopped, task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
