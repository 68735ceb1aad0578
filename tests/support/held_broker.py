"""A TCP proxy of our own in front of the broker, on the test's event loop: ``hold()`` keeps
what the broker sends (PUBACKs, SUBACKs, messages) from reaching the client until
``release()``; what the client sends goes through at once. A broker slow to PUBACK, made
without sleeps. 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class HeldBroker:
    def __init__(self, broker_host: str, broker_port: int) -> None:
        self.broker = (broker_host, broker_port)
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.broker)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer, None),
            self._pipe(up_reader, writer, self._flowing),
            return_exceptions=True,
        )
        self._writers -= {writer, up_writer}

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                if gate is not None:
                    await gate.wait()
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()


@asynccontextmanager
async def held_broker(broker_host: str, broker_port: int) -> AsyncIterator[HeldBroker]:
    proxy = HeldBroker(broker_host, broker_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
