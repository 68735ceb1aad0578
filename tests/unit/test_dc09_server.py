"""The receiver's sockets on 127.0.0.1 with a fake link: replies only after the messages are
safe, no reply when they are not, split and merged TCP reads, UDP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from devices.payloads import AckPayload, AckStatus
from devices.topics import Uplink
from gateways.dc09.accounts import parse_accounts
from gateways.dc09.content import format_timestamp
from gateways.dc09.frames import Token, build_frame, parse_frame
from gateways.dc09.framing import Chunk, FrameReader
from gateways.dc09.receiver import Receiver
from gateways.dc09.server import Dc09Server, ServerOptions
from gateways.link import AckTimeoutError, LinkUnavailableError

NOW = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
STAMP = format_timestamp(NOW)


class FakeLink:
    """Records what is published; ``gate`` holds every publish until it is set."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Uplink, bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def publish(self, device_id: str, kind: Uplink, payload: bytes) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.published.append((device_id, kind, payload))

    async def publish_sos(
        self, device_id: str, payload: bytes, *, seq: int, within_s: float
    ) -> AckPayload:
        await self.publish(device_id, Uplink.SOS, payload)
        return AckPayload(alert_id=1, status=AckStatus.RECEIVED, seq=seq)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Dc09Server, FakeLink]]:
    link = FakeLink()
    receiver = Receiver(parse_accounts({}), None)
    server = Dc09Server(link, receiver, ServerOptions(host="127.0.0.1", port=0), lambda: NOW)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    for _ in range(200):
        if server.readiness()["listener"]():
            break
        await asyncio.sleep(0.01)
    try:
        yield server, link
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


Body = Callable[..., Awaitable[None]]


def run(body: Body, *args: object) -> None:
    async def scenario() -> None:
        async with serving() as (server, link):
            await body(server, link, *args)

    asyncio.run(scenario())


def sos(seq: str = "0001") -> bytes:
    return build_frame(f'"ADM-CID"{seq}L0#1234[#1234|1101 01 003]{STAMP}')


async def read_replies(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    frames, replies = FrameReader(), []
    while len(replies) < count:
        data = await asyncio.wait_for(reader.read(4096), 5)
        if not data:
            break
        replies += [chunk.data for chunk in frames.feed(data)]
    return replies


def test_the_ack_waits_for_the_publish() -> None:
    run(_the_ack_waits_for_the_publish)


async def _the_ack_waits_for_the_publish(server: Dc09Server, link: FakeLink) -> None:
    link.gate.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sos())
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(4096), 0.3)
    assert link.published == []
    link.gate.set()
    (reply,) = await read_replies(reader, 1)
    assert parse_frame(reply).token is Token.ACK
    assert [(d, k) for d, k, _ in link.published] == [("1234", Uplink.SOS)]
    writer.close()


@pytest.mark.parametrize("error", [LinkUnavailableError("down"), AckTimeoutError("late")])
def test_no_reply_and_the_connection_closed_when_not_safe(error: Exception) -> None:
    run(_no_reply_and_the_connection_closed_when_not_safe, error)


async def _no_reply_and_the_connection_closed_when_not_safe(
    server: Dc09Server, link: FakeLink, error: Exception
) -> None:
    link.fail = error
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sos())
    await writer.drain()
    assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed, nothing said
    writer.close()


def test_split_and_merged_tcp_reads() -> None:
    run(_split_and_merged_tcp_reads)


async def _split_and_merged_tcp_reads(server: Dc09Server, link: FakeLink) -> None:
    frames = [sos("0001"), build_frame(f'"NULL"0000L0#1234[]{STAMP}'), sos("0002")]
    stream = frames[0] + b"\x00" + frames[1] + frames[2]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for start in range(0, len(stream), 7):
        writer.write(stream[start : start + 7])
        await writer.drain()
        await asyncio.sleep(0)
    replies = await read_replies(reader, 3)
    assert [parse_frame(r).header for r in replies] == ["0001L0#1234", "0000L0#1234", "0002L0#1234"]
    assert [k for _, k, _ in link.published] == [Uplink.SOS, Uplink.HEARTBEAT, Uplink.SOS]
    writer.close()


def test_a_bad_frame_is_naked_and_the_connection_kept() -> None:
    run(_a_bad_frame_is_naked_and_the_connection_kept)


async def _a_bad_frame_is_naked_and_the_connection_kept(server: Dc09Server, link: FakeLink) -> None:
    bad = bytearray(sos())
    bad[20] ^= 0x01
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(bytes(bad) + sos("0009"))
    await writer.drain()
    nak, ack = await read_replies(reader, 2)
    assert parse_frame(nak).token is Token.NAK
    assert parse_frame(ack).token is Token.ACK
    assert len(link.published) == 1
    writer.close()


def test_udp() -> None:
    run(_udp)


async def _udp(server: Dc09Server, link: FakeLink) -> None:
    assert server.port is not None
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect(("127.0.0.1", server.port))
        await loop.sock_sendall(sock, sos() + b"\x00\x00")
        reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        assert parse_frame(reply).token is Token.ACK
        await loop.sock_sendall(sock, sos("0005").strip(b"\n\r"))  # LF and CR trimmed
        reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        assert parse_frame(reply).token is Token.ACK
        await loop.sock_sendall(sock, b"garbage without a frame")
        reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        assert parse_frame(reply).token is Token.NAK
    finally:
        sock.close()
    assert [k for _, k, _ in link.published] == [Uplink.SOS, Uplink.SOS]


def test_a_bug_on_one_frame_leaves_it_unanswered_and_the_server_serving() -> None:
    run(_a_bug_on_one_frame)


async def _a_bug_on_one_frame(server: Dc09Server, link: FakeLink) -> None:
    link.fail = RuntimeError("a bug")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sos())
    await writer.drain()
    assert await asyncio.wait_for(reader.read(4096), 5) == b""
    writer.close()
    link.fail = None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sos("0002"))
    await writer.drain()
    (reply,) = await read_replies(reader, 1)
    assert parse_frame(reply).token is Token.ACK
    writer.close()


def null(stamp: datetime = NOW, seq: str = "0000") -> Chunk:
    return Chunk(data=build_frame(f'"NULL"{seq}L0#1234[]{format_timestamp(stamp)}'), reason=None)


def test_a_resent_poll_is_acked_again_and_published_once() -> None:
    async def scenario() -> None:
        link, clock = FakeLink(), [NOW]
        receiver = Receiver(parse_accounts({}), None)
        options = ServerOptions(host="127.0.0.1", port=0)
        server = Dc09Server(link, receiver, options, lambda: clock[0])

        async def reply(chunk: Chunk) -> Token | None:
            answer = await server.handle(chunk, "tcp")
            return None if answer is None else parse_frame(answer).token

        link.fail = LinkUnavailableError("no PUBACK in time")
        assert await reply(null()) is None  # not safe: no ACK, and not remembered
        link.fail = None
        clock[0] = NOW + timedelta(seconds=1)
        assert await reply(null()) is Token.ACK  # the resend: published, safe, ACKed
        clock[0] = NOW + timedelta(seconds=31)
        assert await reply(null()) is Token.ACK  # resent again: ACKed, not published
        assert len(link.published) == 1
        assert await reply(null(NOW + timedelta(seconds=2))) is Token.ACK  # the next poll
        assert await reply(null(NOW, seq="0001")) is Token.ACK  # another seq: another poll
        clock[0] = NOW + timedelta(seconds=200)
        assert await reply(null(NOW, seq="0001")) is Token.ACK  # past the resend horizon
        assert [k for _, k, _ in link.published] == [Uplink.HEARTBEAT] * 4
        no_stamp = Chunk(data=build_frame('"NULL"0000L0#1234[]'), reason=None)
        assert (await reply(no_stamp), await reply(no_stamp)) == (Token.ACK, Token.ACK)
        assert len(link.published) == 6  # without a timestamp, nothing tells a resend
        assert len(server.polls) == 1  # one entry per account

    asyncio.run(scenario())


def test_a_port_in_use_is_a_configuration_error() -> None:
    from anxin.settings import ConfigError

    async def scenario() -> None:
        async with serving() as (server, _):
            assert server.port is not None
            taken = ServerOptions(host="127.0.0.1", port=server.port)
            other = Dc09Server(FakeLink(), Receiver(parse_accounts({}), None), taken)
            with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{server.port}"):
                await other.serve(asyncio.Event())

    asyncio.run(scenario())
