"""The DC-09 receiver's sockets: TCP and UDP on one address, frames in, replies out.

For each frame the pure :class:`~gateways.dc09.receiver.Receiver` decides the messages and
the reply; this module publishes the messages through the gateway's link and only then sends
the reply. When the broker does not take a message (or anxin's Ack for an SOS does not come
within ``ANXIN_DC09_SOS_ACK_TIMEOUT_S``) the panel gets no reply at all: on TCP the
connection is closed, so the panel resends (or falls back to its other path) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

import structlog
from prometheus_client import Counter, Gauge

from anxin.settings import ConfigError
from devices.clock import Clock, system_clock
from devices.payloads import AckPayload
from devices.topics import Downlink, Uplink
from gateways.dc09.framing import Chunk, FrameReader
from gateways.dc09.polls import SafePolls
from gateways.dc09.receiver import Outcome, Receiver
from gateways.link import AckTimeoutError, LinkUnavailableError

log = structlog.get_logger(__name__)

CONNECTIONS = Counter("anxin_dc09_connections_total", "TCP connections accepted")
OPEN_CONNECTIONS = Gauge("anxin_dc09_connections_open", "TCP connections open now")
FRAMES = Counter(
    "anxin_dc09_frames_total", "Frames received, by id (*: encrypted; bad: failed checks)",
    ["kind", "transport"],
)  # fmt: skip
REPLIES = Counter("anxin_dc09_replies_total", "Replies sent, by kind", ["reply"])
BAD_FRAMES = Counter(
    "anxin_dc09_bad_frames_total", "Frames NAKed for their CRC, length or format", ["check"]
)
DECRYPT_FAILURES = Counter(
    "anxin_dc09_decrypt_failures_total", "Encrypted frames that did not decrypt (wrong key?)"
)
WINDOW_REJECTIONS = Counter(
    "anxin_dc09_window_rejections_total", "Frames NAKed for a timestamp outside the window"
)
REFUSED = Counter("anxin_dc09_refused_total", "Frames NAKed or DUHed, by problem", ["problem"])
DEAD_LETTERS = Counter(
    "anxin_dc09_dead_letters_total", "Events published as dead letters (unknown codes)"
)
RESENT_POLLS = Counter(
    "anxin_dc09_resent_polls_total",
    "NULL polls sent again after their heartbeat was safe: ACKed again, not published again",
)
UNANSWERED = Counter(
    "anxin_dc09_unanswered_total",
    "Frames left without a reply because their messages were not safe yet",
    ["cause"],
)

IDLE_TIMEOUT_S = 300.0  # a TCP connection silent this long is closed
READ_SIZE = 4096


class Link(Protocol):
    """What the server needs of :class:`gateways.link.GatewayLink`."""

    async def publish(self, device_id: str, kind: Uplink, payload: bytes) -> None: ...

    async def publish_sos(
        self, device_id: str, payload: bytes, *, seq: int, within_s: float
    ) -> AckPayload: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerOptions:
    host: str
    port: int
    sos_ack_timeout_s: float = 10.0
    idle_timeout_s: float = IDLE_TIMEOUT_S


class Dc09Server:
    """``serve`` binds TCP and UDP on the same port; ``port`` tells which (after a 0)."""

    def __init__(
        self, link: Link, receiver: Receiver, options: ServerOptions, clock: Clock = system_clock
    ) -> None:
        self.link, self.receiver, self.options, self.clock = link, receiver, options, clock
        self.port: int | None = None
        self._listening = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: asyncio.TaskGroup | None = None  # the UDP datagrams' tasks
        self.polls = SafePolls()

    def readiness(self) -> Mapping[str, Callable[[], bool]]:
        return {"listener": lambda: self._listening}

    def on_downlink(self, device_id: str, kind: Downlink, payload: bytes) -> None:
        """DC-09 has no downlink but its replies: Acks are awaited by the link, commands are
        not for panels."""

    async def serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.options.host, self.options.port
        try:
            tcp = await asyncio.start_server(self._connection, host, port, reuse_address=True)
        except OSError as error:
            raise _bind_error(host, port, "TCP", error) from None
        self.port = tcp.sockets[0].getsockname()[1]
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, self.port)
            )
        except OSError as error:
            tcp.close()
            raise _bind_error(host, self.port, "UDP", error) from None
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._listening = True
            log.info("dc09.listening", host=host, port=self.port, transports="tcp,udp")
            try:
                await stop.wait()
            finally:
                self._listening = False
                self._tasks = None
                udp.close()
                tcp.close()
                for writer in list(self._writers):
                    writer.close()
                await tcp.wait_closed()
        log.info("dc09.stopped")

    async def handle(self, chunk: Chunk, transport: str) -> bytes | None:
        """The reply to one delimited chunk once its messages are safe; None: no reply."""
        now = self.clock()
        if chunk.reason is not None:
            outcome = self.receiver.reject(chunk.data, chunk.reason, now)
        else:
            outcome = self.receiver.handle(chunk.data, now)
        FRAMES.labels(outcome.frame_kind, transport).inc()
        _count(outcome)
        poll = outcome.poll
        messages = outcome.messages
        if poll is not None and self.polls.is_resend(poll, now):
            RESENT_POLLS.inc()
            messages = ()  # its heartbeat is safe already: ACKed again, counted once
        try:
            for message in messages:
                if message.sos_seq is not None:
                    await self.link.publish_sos(
                        message.device_id,
                        message.payload,
                        seq=message.sos_seq,
                        within_s=self.options.sos_ack_timeout_s,
                    )
                else:
                    await self.link.publish(message.device_id, message.kind, message.payload)
        except (LinkUnavailableError, AckTimeoutError) as error:
            cause = "ack_timeout" if isinstance(error, AckTimeoutError) else "broker"
            UNANSWERED.labels(cause).inc()
            log.warning("dc09.unanswered", account=outcome.account, cause=cause, error=str(error))
            return None
        if poll is not None and messages:
            self.polls.remember(poll, now)
        REPLIES.labels(outcome.reply_kind).inc()
        _log(outcome, transport, published=len(messages))
        return outcome.reply

    async def safely(self, chunk: Chunk, transport: str) -> bytes | None:
        """:meth:`handle`, and a bug met on one frame stays with that frame: logged, and the
        panel left without a reply (it resends), while every other connection carries on."""
        try:
            return await self.handle(chunk, transport)
        except Exception:
            UNANSWERED.labels("error").inc()
            log.exception("dc09.frame_failed", transport=transport, size=len(chunk.data))
            return None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        CONNECTIONS.inc()
        OPEN_CONNECTIONS.inc()
        self._writers.add(writer)
        frames = FrameReader()
        try:
            while True:
                try:
                    data = await asyncio.wait_for(
                        reader.read(READ_SIZE), self.options.idle_timeout_s
                    )
                except TimeoutError:
                    break
                if not data:
                    break
                if not await self._answer(frames.feed(data), writer):
                    break
                if frames.overflowed:
                    log.warning("dc09.stream_lost", note="no frame in a frame's worth of bytes")
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            OPEN_CONNECTIONS.dec()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, chunks: list[Chunk], writer: asyncio.StreamWriter) -> bool:
        """Reply to each chunk in order; False when the connection is to be closed."""
        for chunk in chunks:
            reply = await self.safely(chunk, "tcp")
            if reply is None:
                return False
            writer.write(reply)
            await writer.drain()
        return True


class _Datagrams(asyncio.DatagramProtocol):
    """One datagram, one frame (trailing NULs allowed, LF and CR optional); each handled in a
    task of its own."""

    def __init__(self, server: Dc09Server) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        tasks = self.server._tasks
        if tasks is not None:  # None: not serving yet, or stopping (the panel resends)
            tasks.create_task(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        # A datagram is one frame: a sender that leaves out the LF or the CR (captures show
        # both trimmed) is still understood; the CRC and the length decide the rest.
        data = data.rstrip(b"\x00")
        if data and not data.startswith(b"\n"):
            data = b"\n" + data
        if data and not data.endswith(b"\r"):
            data += b"\r"
        chunks = FrameReader().feed(data)
        if not chunks:
            chunks = [Chunk(data=data, reason="a datagram without a frame")]
        for chunk in chunks:
            reply = await self.server.safely(chunk, "udp")
            if reply is not None and self.transport is not None:
                self.transport.sendto(reply, addr)


def _bind_error(host: str, port: int, transport: str, error: OSError) -> ConfigError:
    return ConfigError(
        f"cannot listen on {host}:{port} ({transport}, ANXIN_DC09_LISTEN): {error.strerror}"
    )


def _count(outcome: Outcome) -> None:
    problem = outcome.problem
    if problem is None:
        return
    REFUSED.labels(problem).inc()
    if outcome.frame_kind == "bad":
        BAD_FRAMES.labels(problem).inc()
    elif problem == "decrypt":
        DECRYPT_FAILURES.inc()
    elif problem == "window":
        WINDOW_REJECTIONS.inc()
    letters = sum(1 for message in outcome.messages if message.dead_letter)
    if letters:
        DEAD_LETTERS.inc(letters)


def _log(outcome: Outcome, transport: str, *, published: int) -> None:
    fields = {
        "frame": outcome.frame_kind,
        "reply": outcome.reply_kind,
        "transport": transport,
        "account": outcome.account,
        "messages": published,  # 0 for a resent poll: ACKed again, not published
    }
    if outcome.problem is None:
        log.info("dc09.frame", **fields)
    else:
        log.warning("dc09.frame_refused", problem=outcome.problem, detail=outcome.detail, **fields)
