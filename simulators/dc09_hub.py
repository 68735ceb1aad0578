"""A virtual telecare hub that reports to a DC-09 receiver, encrypted or not.

Pure part: :class:`HubFrames` makes the hub's frames (NULL polls, Contact ID or SIA events)
with its own sequence counter (0001–9999, wrapping; NULL polls 0000). I/O part:
:class:`HubClient` sends one frame over TCP or UDP and waits for the reply, and sends the
same frame again until it is ACKed, as a panel does (each resend is the same bytes: the same
seq and timestamp, so the receiver counts it once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from devices.clock import Clock, system_clock
from gateways.dc09.content import format_timestamp
from gateways.dc09.crypto import KeyEncoding, decode_key, encrypt, random_pad
from gateways.dc09.frames import FrameError, Token, build_frame, parse_frame
from gateways.dc09.framing import FrameReader

# What a hub sends for the contract's events: Contact ID codes (the receiver's standard table).
CID_OF_EVENT = {
    "smoke": "111", "heat": "114", "gas": "151", "co": "162", "water_leak": "154",
    "low_battery": "302", "power_loss": "301", "tamper": "383", "test": "602",
}  # fmt: skip


@dataclass(kw_only=True)
class HubFrames:
    """The frames of one hub (``account``), plain or encrypted with ``key``."""

    account: str
    key: str | None = None
    key_encoding: KeyEncoding = KeyEncoding.TEXT
    receiver: str = "R1"
    prefix: str = "L0"
    binary_crc: bool = False
    pad: Callable[[int], bytes] = random_pad
    _seq: int = 0
    _key: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._key = None if self.key is None else decode_key(self.key, self.key_encoding)

    def null(self, now: datetime) -> bytes:
        return self._frame(Token.NULL, "0000", "", now)

    def contact_id(
        self, code: str, now: datetime, *, restore: bool = False, zone: int = 1
    ) -> bytes:
        qualifier = "3" if restore else "1"
        return self._frame(
            Token.ADM_CID, self._next(), f"#{self.account}|{qualifier}{code} 01 {zone:03d}", now
        )

    def sia(self, code: str, now: datetime, *, zone: int = 1, area: int = 1) -> bytes:
        return self._frame(
            Token.SIA_DCS, self._next(), f"#{self.account}|Nri{area}/{code}{zone:02d}", now
        )

    def sos(self, now: datetime, zone: int = 1) -> bytes:
        return self.contact_id("101", now, zone=zone)

    def _next(self) -> str:
        self._seq = self._seq % 9999 + 1
        return f"{self._seq:04d}"

    def _frame(self, token: Token, seq: str, data: str, now: datetime) -> bytes:
        head = f"{seq}{self.receiver}{self.prefix}#{self.account}"
        stamp = format_timestamp(now)
        if self._key is not None:
            sealed = encrypt(self._key, f"{data}]{stamp}".encode(), self.pad)
            return build_frame(f'"*{token.value}"{head}[{sealed}', binary_crc=self.binary_crc)
        return build_frame(f'"{token.value}"{head}[{data}]{stamp}', binary_crc=self.binary_crc)


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    reply: str | None  # ACK, NAK, DUH; None: nothing came
    attempts: int
    seconds: float  # from the first send to the accepted reply


class HubClient:
    """Sends frames to ``host:port`` over ``transport`` (tcp or udp), resending until ACK."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        transport: str = "tcp",
        reply_timeout_s: float = 15.0,
        max_attempts: int = 5,
        retry_delay_s: float = 1.0,
        clock: Clock = system_clock,
    ) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError("transport: tcp or udp")
        self.host, self.port, self.transport = host, port, transport
        self.reply_timeout_s, self.max_attempts = reply_timeout_s, max_attempts
        self.retry_delay_s, self.clock = retry_delay_s, clock
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._frames = FrameReader()

    async def deliver(self, frame: bytes) -> Delivery:
        """Send ``frame`` until it is ACKed (or DUHed: the receiver will not take it), at most
        ``max_attempts`` times; a NAK, silence or a closed connection means send again."""
        started = time.perf_counter()
        last: str | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                reply = await self._exchange(frame)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                await self.close()
                reply = None
            last = reply
            if reply in ("ACK", "DUH"):
                return Delivery(
                    reply=reply, attempts=attempt, seconds=time.perf_counter() - started
                )
            await asyncio.sleep(self.retry_delay_s)
        return Delivery(
            reply=last, attempts=self.max_attempts, seconds=time.perf_counter() - started
        )

    async def close(self) -> None:
        if self._stream is not None:
            _, writer = self._stream
            self._stream = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _exchange(self, frame: bytes) -> str | None:
        if self.transport == "udp":
            return await self._datagram(frame)
        if self._stream is None:
            self._stream = await asyncio.open_connection(self.host, self.port)
            self._frames = FrameReader()
        reader, writer = self._stream
        writer.write(frame)
        await writer.drain()
        async with asyncio.timeout(self.reply_timeout_s):
            while True:
                data = await reader.read(4096)
                if not data:
                    await self.close()
                    return None
                for chunk in self._frames.feed(data):
                    return _token(chunk.data)

    async def _datagram(self, frame: bytes) -> str | None:
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()

        class _Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not answered.done():
                    answered.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(
            _Protocol, remote_addr=(self.host, self.port)
        )
        try:
            transport.sendto(frame)
            return _token(await asyncio.wait_for(answered, self.reply_timeout_s))
        finally:
            transport.close()


def _token(reply: bytes) -> str | None:
    try:
        return parse_frame(reply).token.value
    except FrameError:
        return None
