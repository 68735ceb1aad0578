"""Virtual 4G watches live: one TCP connection each to ``anxin gateway watch``.

Each watch connects, says ``LK`` (a watch's first frame), then sends its traffic as frames
(simulators/watch_encoding.py). It reads the gateway's replies; an ``AL`` left unanswered is
sent again every ``resend_s`` until the ``AL`` reply comes, as real watches do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime

from gateways.watch.frames import Framer, RawFrame, encode_frame
from simulators.behaviours import Emission
from simulators.watch_encoding import VENDOR, WatchEncoder

RESEND_S = 5.0


class WatchLink:
    """One watch's connection and its unanswered alarms."""

    def __init__(
        self,
        device_id: str,
        address: tuple[str, int],
        by_kind: Counter[str],
        errors: Counter[str],
        resend_s: float = RESEND_S,
    ) -> None:
        self.device_id, self.address = device_id, address
        self.by_kind, self.errors = by_kind, errors
        self.resend_s = resend_s
        self.encoder = WatchEncoder(device_id)
        self.up = False
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        # AL contents sent and not answered yet → when last sent (loop time).
        self.pending: dict[str, float] = {}
        self.answered = 0

    async def connect(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection(*self.address)
        except OSError as exc:
            self.errors[f"cannot connect to the watch gateway: {exc.strerror or exc}"] += 1
            return False
        self._writer, self.up = writer, True
        self._reader_task = asyncio.create_task(self._read(reader), name=f"watch-{self.device_id}")
        self._write("LK")
        self.by_kind["LK"] += 1
        return True

    def send(self, emission: Emission, ts: datetime) -> int:
        """The emission's frames; how many were sent."""
        if not self.up:
            self.errors["watch not connected"] += 1
            return 0
        contents = self.encoder.contents(emission, ts)
        now = asyncio.get_running_loop().time()
        for content in contents:
            self._write(content)
            if content.startswith("AL"):
                self.pending[content] = now
        return len(contents)

    def resend_due(self) -> None:
        """Send again every AL that waited ``resend_s`` for its reply."""
        now = asyncio.get_running_loop().time()
        for content, sent in list(self.pending.items()):
            if now - sent >= self.resend_s and self.up:
                self._write(content)
                self.pending[content] = now
                self.by_kind["AL resent"] += 1

    def _write(self, content: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode_frame(VENDOR, self.device_id, content))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        framer = Framer()
        try:
            while data := await reader.read(4096):
                for item in framer.feed(data):
                    if not isinstance(item, RawFrame):
                        continue
                    content = item.data[1:-1].split(b"*", 3)[-1]
                    word = content.split(b",", 1)[0].decode("ascii", "replace")
                    self.by_kind[f"reply {word}"] += 1
                    if word == "AL":
                        # The gateway answers an AL once it is stored: all of it is safe.
                        self.answered += len(self.pending)
                        self.pending.clear()
        except (ConnectionError, OSError):
            pass
        finally:
            if self.up:
                self.errors["watch connection lost"] += 1
            self.up = False

    async def close(self) -> None:
        self.up = False
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
