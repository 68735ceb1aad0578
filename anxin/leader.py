"""Exactly one scheduler at a time: on PostgreSQL, whoever holds an advisory lock leads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from sqlalchemy import Engine, text

log = structlog.get_logger(__name__)

# Any number that is ours: 12349, the hotline.
SCHEDULER_LOCK = 12349


async def run_when_leader(
    engine: Engine,
    work: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
    retry_s: float = 10.0,
) -> None:
    """Run ``work`` while this process holds the scheduler lock (SQLite: one host, one
    process by design, so no lock is needed)."""
    if engine.dialect.name != "postgresql":
        await work(stop)
        return
    connection = await asyncio.to_thread(engine.connect)
    try:
        while not stop.is_set():
            held = await asyncio.to_thread(
                lambda: bool(
                    connection.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK}
                    ).scalar()
                )
            )
            if held:
                log.info("scheduler.leading")
                await work(stop)
                return
            log.info("scheduler.standing_by", note="another process leads")
            try:
                await asyncio.wait_for(stop.wait(), timeout=retry_s)
            except TimeoutError:
                continue
    finally:
        # The lock belongs to the database session: end it, rather than hand it to the pool.
        await asyncio.to_thread(connection.invalidate)
        await asyncio.to_thread(connection.close)
