"""A broker slow to answer, for benchmarks: a TCP proxy of ours, in a thread of its own, that
hands the broker's bytes (PUBACKs, messages) to the client ``delay_s`` later, in order, and
the client's to the broker at once. What a busy machine does to a gateway's round trip, made
reproducible on a quiet one (scripts/measure_watch_gateway.py, ``--broker-delay-ms`` of the
soak). 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

from simulators.bench_broker import free_port


class DelayedBroker:
    """A TCP proxy in a thread of its own: the broker's bytes reach the client ``delay_s``
    later, in order; the client's go through at once."""

    def __init__(self, host: str, port: int, delay_s: float) -> None:
        self.broker, self.delay_s = (host, port), delay_s
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.broker)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._delayed(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _delayed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunks: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()

        async def send() -> None:
            while True:
                await arrived.wait()
                while chunks:
                    due, data = chunks[0]
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    chunks.popleft()
                    writer.write(data)
                arrived.clear()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(1 << 16):
                chunks.append((time.monotonic() + self.delay_s, data))
                arrived.set()
        finally:
            sender.cancel()
            writer.close()
