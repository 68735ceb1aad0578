"""The API's own publish-only broker connection, against a real Mosquitto: it waits for the
PUBACK, refuses at once while disconnected, gives up on a broker that does not answer, and
comes back by itself when the broker does."""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.mqtt import BrokerAddress
from ingest.publisher import BrokerPublisher, BrokerUnavailableError, PublisherOptions
from simulators.bench_broker import mosquitto_binary
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening
from tests.support.ports import wait_for_port
from tests.support.service import wait_until

TOPIC = "anxin/v1/p-1/cmd"


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[BrokerPublisher]:
    running = BrokerPublisher(
        BrokerAddress(host=mosquitto.host, port=mosquitto.port),
        PublisherOptions(client_id="anxin-test-api", puback_timeout_s=0.5),
    )
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()


def test_a_publication_is_acknowledged_by_the_broker_and_arrives(
    mosquitto: Mosquitto, publisher: BrokerPublisher
) -> None:
    with listening(mosquitto.port, TOPIC) as received:
        took = []
        for n in range(100):
            started = time.perf_counter()
            publisher.publish(TOPIC, f"{n}".encode())
            took.append(time.perf_counter() - started)
        got = [received.get(timeout=10) for _ in range(100)]
    assert [m.payload for m in got] == [f"{n}".encode() for n in range(100)]
    assert {(m.qos, m.retain) for m in got} == {(1, False)}
    p50, p99 = statistics.median(took), statistics.quantiles(took, n=100)[98]
    print(f"publish until PUBACK: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    assert p99 < 0.5


def test_a_broker_that_does_not_answer_is_given_up_on_within_the_timeout(
    mosquitto: Mosquitto, publisher: BrokerPublisher
) -> None:
    mosquitto.process.send_signal(signal.SIGSTOP)  # the connection stays; nothing answers
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=r"no PUBACK within 0\.5 s"):
            publisher.publish(TOPIC, b"lost?")
        waited = time.monotonic() - started
    finally:
        mosquitto.process.send_signal(signal.SIGCONT)
    assert 0.5 <= waited < 1.5
    publisher.publish(TOPIC, b"again")  # the broker answers again


def test_while_the_broker_is_down_publish_fails_at_once_and_then_reconnects(
    mosquitto: Mosquitto, publisher: BrokerPublisher
) -> None:
    mosquitto.process.terminate()
    mosquitto.process.wait(timeout=10)
    wait_until(lambda: not publisher.connected or None)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="not connected"):
        publisher.publish(TOPIC, b"nobody")
    assert time.monotonic() - started < 0.1

    config = Path(mosquitto.log).parent / "mosquitto.conf"
    again = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stderr=subprocess.PIPE)
    try:
        wait_for_port(mosquitto.port)
        wait_until(lambda: publisher.connected or None, within_s=15)  # backoff: 1, 2, 4 … s
        with listening(mosquitto.port, TOPIC) as received:
            publisher.publish(TOPIC, b"back")
            assert received.get(timeout=10).payload == b"back"
    finally:
        again.terminate()
        again.wait(timeout=10)
