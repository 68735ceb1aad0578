"""anxin's broker connection against a real Mosquitto: bulk reads, PUBACK only on request, the
persistent session, and reconnecting after the broker restarts."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from ingest.mqtt import BrokerAddress, Delivery, MqttConnection, SessionOptions
from simulators.bench_broker import BenchBroker, running_broker
from simulators.bench_publisher import connect_packet, publish_packet

PROTOCOLS = [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311]
SUBSCRIPTIONS = ["anxin/v1/+/heartbeat", "anxin/v1/+/sos"]


@contextmanager
def publisher(broker: BenchBroker) -> Iterator[socket.socket]:
    """A raw MQTT 3.1.1 connection: whatever is sent leaves in one write, as a device burst."""
    sock = socket.create_connection((broker.host, broker.port), timeout=10)
    sock.sendall(connect_packet(f"test-publisher-{random.randrange(10**9)}"))  # noqa: S311
    assert sock.recv(4)[:1] == b"\x20"  # CONNACK
    try:
        yield sock
    finally:
        sock.sendall(b"\xe0\x00")
        sock.close()


def publish(broker: BenchBroker, messages: list[tuple[str, bytes]], qos: int = 0) -> None:
    packets = [
        publish_packet(topic.encode(), payload, qos=qos, packet_id=index + 1)
        for index, (topic, payload) in enumerate(messages)
    ]
    with publisher(broker) as sock:
        sock.sendall(b"".join(packets))
        if qos:
            expected, got = 4 * len(packets), b""  # the broker's PUBACKs: all accepted
            while len(got) < expected:
                got += sock.recv(65536)


def connection_to(
    broker: BenchBroker, protocol: MQTTProtocolVersion, client_id: str = "anxin-test"
) -> MqttConnection:
    options = SessionOptions(
        client_id=client_id,
        subscriptions=SUBSCRIPTIONS,
        protocol=protocol,
        reconnect_delay_s=(0.05, 0.2),
    )
    return MqttConnection(BrokerAddress(host=broker.host, port=broker.port), options)


async def receive(connection: MqttConnection, count: int, within_s: float = 10) -> list[Delivery]:
    got: list[Delivery] = []
    async with asyncio.timeout(within_s):
        while len(got) < count:
            got += await connection.next_batch(100_000)
    return got


async def nothing_more(connection: MqttConnection, within_s: float = 0.5) -> bool:
    try:
        async with asyncio.timeout(within_s):
            await connection.next_batch(1)
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["mqtt5", "mqtt311"])
def test_a_burst_arrives_whole_and_in_order(tmp_path: Path, protocol: MQTTProtocolVersion) -> None:
    """Thousands of packets, cut anywhere by the reads, and payloads larger than one read."""
    rng = random.Random(7)  # noqa: S311 - test data
    messages = [
        (f"anxin/v1/dev-{i % 37}/heartbeat", bytes(rng.randrange(256) for _ in range(size)))
        for i, size in enumerate(rng.choice([0, 1, 2, 50, 127, 128, 300]) for _ in range(3000))
    ]
    messages[1500] = ("anxin/v1/big-1/heartbeat", b"x" * 200_000)  # over three reads
    messages[1501] = ("anxin/v1/big-2/sos", b"y" * 16_384)

    async def scenario(broker: BenchBroker) -> list[Delivery]:
        connection = connection_to(broker, protocol)
        await connection.start()
        try:
            assert await connection.wait_connected(10)
            publish(broker, messages)
            return await receive(connection, len(messages))
        finally:
            await connection.stop()

    with running_broker(tmp_path) as broker:
        got = asyncio.run(scenario(broker))
    assert [(d.topic, d.payload) for d in got] == messages
    assert {d.qos for d in got} == {0}
    assert {d.connection for d in got} == {1}


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["mqtt5", "mqtt311"])
def test_qos1_comes_again_until_acknowledged(tmp_path: Path, protocol: MQTTProtocolVersion) -> None:
    sos = [(f"anxin/v1/pendant-{i}/sos", b'{"seq": %d}' % i) for i in range(3)]

    async def session(broker: BenchBroker, ack: bool, publish_first: bool = False) -> list[bytes]:
        connection = connection_to(broker, protocol)
        await connection.start()
        try:
            assert await connection.wait_connected(10)
            if publish_first:
                publish(broker, sos, qos=1)
            got = await receive(connection, len(sos)) if publish_first or ack else []
            if ack:
                connection.ack(got)
                await asyncio.sleep(0.1)  # the PUBACKs on their way
            assert await nothing_more(connection)
            return [d.payload for d in got]
        finally:
            await connection.stop()

    async def scenario(broker: BenchBroker) -> None:
        # Received, not acknowledged: the broker keeps them for the session.
        assert await session(broker, ack=False, publish_first=True) == [p for _, p in sos]
        # They come again, and are acknowledged this time: then they never come back.
        assert await session(broker, ack=True) == [p for _, p in sos]
        assert await session(broker, ack=False) == []

    with running_broker(tmp_path) as broker:
        asyncio.run(scenario(broker))


class RestartableBroker:
    """A persistent Mosquitto that can be stopped and started again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, 0
        self._running: ExitStack | None = None
        self.broker: BenchBroker | None = None

    def start(self) -> BenchBroker:
        settings = ["persistence true", f"persistence_location {self.folder}/"]
        self._running = ExitStack()
        self.broker = self._running.enter_context(
            running_broker(self.folder, port=self.port or None, settings=settings)
        )
        self.port = self.broker.port
        return self.broker

    def stop(self) -> None:
        # SIGTERM: mosquitto saves the sessions and their unacknowledged messages.
        if self._running is not None:
            self._running.close()
            self._running = None


def test_reconnects_after_a_broker_restart_and_acks_only_on_the_same_connection(
    tmp_path: Path,
) -> None:
    restartable = RestartableBroker(tmp_path)
    broker = restartable.start()
    connection = connection_to(broker, MQTTProtocolVersion.MQTTv5)

    async def restart(connection: MqttConnection) -> None:
        restartable.stop()
        async with asyncio.timeout(10):
            while connection.connected:  # noqa: ASYNC110 - a flag, polled
                await asyncio.sleep(0.01)
        restartable.start()
        assert await connection.wait_connected(10)

    async def scenario() -> None:
        await connection.start()
        try:
            assert await connection.wait_connected(10)
            publish(broker, [("anxin/v1/pendant-1/sos", b"{}")], qos=1)
            (first,) = await receive(connection, 1)
            assert first.connection == 1

            await restart(connection)
            (again,) = await receive(connection, 1)  # not acknowledged: delivered again
            assert (again.payload, again.connection) == (b"{}", 2)
            connection.ack([first])  # of connection 1: no PUBACK on connection 2

            await restart(connection)
            (third,) = await receive(connection, 1)  # so it comes once more
            assert third.connection == 3
            connection.ack([third])
            await asyncio.sleep(0.2)

            await restart(connection)
            assert await nothing_more(connection)  # acknowledged on its own connection: gone
        finally:
            await connection.stop()

    try:
        asyncio.run(scenario())
    finally:
        restartable.stop()
