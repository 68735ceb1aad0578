"""The watch server in-process on a real Mosquitto (through the real GatewayLink), with a test
in the role of anxin: it reads what the gateway publishes and publishes the Acks and Commands
itself. Connections are real TCP sockets on 127.0.0.1; nothing is faked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import aiomqtt
import pytest

from gateways.link import GatewayLink, LinkOptions
from gateways.watch.frames import Framer, RawFrame, encode_frame
from gateways.watch.server import WatchOptions, WatchServer
from ingest.mqtt import BrokerAddress
from tests.support.held_broker import held_broker
from tests.support.mosquitto import Mosquitto
from tests.support.watch import alarm_content

pytestmark = pytest.mark.integration
T = TypeVar("T")


class Watch:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wid: str):
        self.reader, self.writer, self.id = reader, writer, wid
        self.framer = Framer()
        self.frames: list[bytes] = []

    def send(self, content: str | bytes, index: str | None = None) -> None:
        if isinstance(content, bytes):
            self.writer.write(content)
        else:
            vendor = "3G" if index is None else "ZJ"
            self.writer.write(encode_frame(vendor, self.id, content, index=index))

    async def next(self, within_s: float = 5.0) -> bytes:
        while not self.frames:
            data = await asyncio.wait_for(self.reader.read(4096), within_s)
            if not data:
                raise ConnectionError("closed by the gateway")
            self.frames += [i.data for i in self.framer.feed(data) if isinstance(i, RawFrame)]
        return self.frames.pop(0)

    async def nothing(self, within_s: float) -> None:
        with pytest.raises(TimeoutError):
            await self.next(within_s)


@asynccontextmanager
async def gateway(
    mosquitto: Mosquitto,
    *,
    broker_port: int | None = None,  # the gateway's way to the broker (a proxy), not anxin's
    puback_timeout_s: float = 5.0,
    **options: object,
) -> AsyncIterator[tuple[WatchServer, Callable[[str], Awaitable[Watch]], aiomqtt.Client]]:
    broker = BrokerAddress(host=mosquitto.host, port=broker_port or mosquitto.port)
    link_options = LinkOptions(client_id="gw-watch-test", puback_timeout_s=puback_timeout_s)
    link = GatewayLink(broker, link_options, name="watch-test")
    server = WatchServer(link, WatchOptions(host="127.0.0.1", port=0, **options))  # type: ignore[arg-type]
    link.on_downlink = server.on_downlink
    stop = asyncio.Event()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="anxin-role") as anxin:
        await anxin.subscribe("anxin/v1/#", qos=1)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(link.run(stop))
            tasks.create_task(server.serve(stop))
            assert await link.wait_connected(5)
            while server.address is None:  # noqa: ASYNC110 - a property, not an event
                await asyncio.sleep(0.01)
            host, port = server.address

            async def connect(wid: str) -> Watch:
                reader, writer = await asyncio.open_connection(host, port)
                return Watch(reader, writer, wid)

            try:
                yield server, connect, anxin
            finally:
                stop.set()


async def published(anxin: aiomqtt.Client, suffix: str, within_s: float = 5) -> dict[str, object]:
    async def first() -> dict[str, object]:
        async for message in anxin.messages:
            if message.topic.value.endswith(suffix):
                assert isinstance(message.payload, bytes)
                body: dict[str, object] = json.loads(message.payload)
                return body
        raise AssertionError("no message")

    return await asyncio.wait_for(first(), within_s)


def content(frame: bytes) -> bytes:
    return frame[1:-1].split(b"*", 3)[-1]


def run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(test())


def test_lk_heartbeat_reply_gps_on_and_bad_input_leaves_the_connection_open(
    mosquitto: Mosquitto,
) -> None:
    async def main() -> None:
        async with gateway(mosquitto) as (_, connect, anxin):
            watch = await connect("8800000015")
            watch.send(b"\r\nGET / HTTP/1.1\r\n[3G*88*0002*LK]")  # junk, then a bad header
            watch.send("WHAT,1,2")  # a type nobody knows
            watch.send("LK,50,100,95")
            assert await published(anxin, "/8800000015/heartbeat") == {"battery": 95, "steps": 50}
            assert content(await watch.next()) == b"LK"
            assert content(await watch.next()) == b"APPLOCK,DW-1"  # once, after the first LK
            watch.send("LK")
            assert content(await watch.next()) == b"LK"
            await watch.nothing(0.3)

    run(main)


def test_sos_is_answered_only_after_the_ack_and_acks_reach_the_screen(
    mosquitto: Mosquitto,
) -> None:
    async def main() -> None:
        async with gateway(mosquitto, gps_on=False) as (_, connect, anxin):
            watch = await connect("8800000015")
            watch.send(alarm_content("00010001"))
            sos = await published(anxin, "/8800000015/sos")
            assert sos["trigger"] == "watch"
            watch.send(alarm_content("00010001"))  # the watch repeats it meanwhile
            await watch.nothing(0.5)  # PUBACKed, not stored: no AL yet
            ack = {"alert_id": 7, "status": "received", "message": "已收到", "seq": sos["seq"]}
            await anxin.publish("anxin/v1/8800000015/ack", json.dumps(ack), qos=1)
            got = {content(await watch.next()), content(await watch.next())}
            assert got == {b"AL", b"MESSAGE," + "已收到".encode("utf-16-be").hex().upper().encode()}
            # The low-battery bit with it was published too (once stored: after the SOS).
            assert (await published(anxin, "/8800000015/event"))["type"] == "low_battery"

    run(main)


def test_an_al_behind_lks_waiting_for_their_pubacks_is_published_at_once(
    mosquitto: Mosquitto,
) -> None:
    """The broker holds its PUBACKs: the AL a watch sends after 10 LKs is read and its SOS
    published all the same, not after the LKs' PUBACKs; once they come, the LKs are answered
    in frame order, and the AL once stored."""

    async def main() -> None:
        async with (
            held_broker(mosquitto.host, mosquitto.port) as broker,
            gateway(mosquitto, broker_port=broker.port, puback_timeout_s=60, gps_on=False) as (
                _,
                connect,
                anxin,
            ),
        ):
            watch = await connect("8800000015")
            watch.send("LK", index="0000")
            assert (await watch.next()).endswith(b"*0000*0002*LK]")
            broker.hold()
            for number in range(1, 11):
                watch.send(f"LK,{number},0,90", index=f"{number:04X}")
            watch.send(alarm_content("00010000"), index="000B")
            heartbeats = 0
            async with asyncio.timeout(5):
                async for message in anxin.messages:
                    if message.topic.value.endswith("/heartbeat"):
                        heartbeats += 1
                    if message.topic.value.endswith("/sos"):
                        assert isinstance(message.payload, bytes)
                        sos = json.loads(message.payload)
                        break
            assert heartbeats == 11  # the first LK's, and the 10 held ones before it
            await watch.nothing(0.2)  # nothing answered while the PUBACKs are held
            broker.release()
            lk_indexes = [(await watch.next()).split(b"*")[2] for _ in range(10)]
            assert lk_indexes == [f"{number:04X}".encode() for number in range(1, 11)]
            ack = {"alert_id": 1, "status": "received", "seq": sos["seq"]}
            await anxin.publish("anxin/v1/8800000015/ack", json.dumps(ack), qos=1)
            got = [await watch.next(), await watch.next()]
            assert b"000B*0002*AL]" in {frame[-13:] for frame in got}

    run(main)


def test_a_second_connection_replaces_the_first_and_commands_reach_the_newest(
    mosquitto: Mosquitto,
) -> None:
    async def main() -> None:
        async with gateway(mosquitto, gps_on=False) as (server, connect, anxin):
            first = await connect("8800000015")
            first.send("LK")
            assert content(await first.next()) == b"LK"
            second = await connect("8800000015")
            second.send("LK")
            assert content(await second.next()) == b"LK"
            with pytest.raises(ConnectionError):
                await first.next()
            command = {"command": "configure", "params": {"upload_interval_s": 600}, "id": "0" * 32}
            await anxin.publish("anxin/v1/8800000015/cmd", json.dumps(command), qos=1)
            assert content(await second.next()) == b"UPLOAD,600"
            locate = {"command": "locate", "params": {}, "id": "1" * 32}
            await anxin.publish("anxin/v1/8800000015/cmd", json.dumps(locate), qos=1)
            assert content(await second.next()) == b"CR"
            assert server.connections == 1

    run(main)


def test_registered_ids_only_drops_strangers_but_not_their_sos(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    allowed = tmp_path / "watches.txt"
    allowed.write_text("8800000015  # the one we handed out\n")

    async def main() -> None:
        async with gateway(mosquitto, gps_on=False, allowed_ids_file=allowed) as (
            _,
            connect,
            anxin,
        ):
            stranger = await connect("1234567890")
            stranger.send("LK")
            await stranger.nothing(0.5)  # not answered, not published
            stranger.send(alarm_content("00010000"))
            sos = await published(anxin, "/1234567890/sos")  # an SOS is never dropped
            assert sos["trigger"] == "watch"
            ours = await connect("8800000015")
            ours.send("LK")
            assert content(await ours.next()) == b"LK"

    run(main)


def test_a_silent_connection_is_closed(mosquitto: Mosquitto) -> None:
    async def main() -> None:
        async with gateway(mosquitto, idle_timeout_s=0.3) as (server, connect, _):
            watch = await connect("8800000015")
            with pytest.raises(ConnectionError):
                await watch.next(within_s=3)
            for _ in range(100):
                if server.connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert server.connections == 0

    run(main)
