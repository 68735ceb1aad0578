"""The change feed: who wants to hear that an alert was created or updated (SSE, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from alerting.store import AlertChange


class AlertFeed:
    """In-process fan-out of alert changes; each listener has a bounded queue."""

    def __init__(self, listener_queue: int = 1000) -> None:
        self._listeners: set[asyncio.Queue[AlertChange]] = set()
        self._listener_queue = listener_queue

    def publish(self, changes: Sequence[AlertChange]) -> None:
        for queue in self._listeners:
            for change in changes:
                if queue.full():
                    # A listener that cannot keep up loses its oldest news, not the newest.
                    queue.get_nowait()
                queue.put_nowait(change)

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[AlertChange]]:
        queue: asyncio.Queue[AlertChange] = asyncio.Queue(self._listener_queue)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
