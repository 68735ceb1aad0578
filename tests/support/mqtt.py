"""Small MQTT helpers for tests: Debian's mosquitto_pub, and a paho listener."""

from __future__ import annotations

import queue
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.mqtt import Delivery


def delivery(
    topic: str, payload: bytes | str, at: datetime, *, qos: int = 1, mid: int = 1
) -> Delivery:
    """A message as the broker connection hands it to the pipeline, received at ``at``."""
    body = payload.encode() if isinstance(payload, str) else payload
    return Delivery(
        topic=topic, payload=body, qos=qos, retain=False, mid=mid, connection=1, received_at=at
    )


def mosquitto_pub(
    port: int, topic: str, message: str, qos: int = 1, protocol: str = "mqttv5"
) -> None:
    subprocess.run(
        [
            "mosquitto_pub",
            "-h", "127.0.0.1",
            "-p", str(port),
            "-V", protocol,
            "-q", str(qos),
            "-t", topic,
            "-m", message,
        ],
        check=True,
        timeout=10,
    )  # fmt: skip


@contextmanager
def listening(
    port: int, topic: str, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
) -> Iterator[queue.Queue[paho.MQTTMessage]]:
    """Subscribe to ``topic`` and hand over what arrives; ready once the SUBACK is in."""
    received: queue.Queue[paho.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.put(True)
    # amqtt (the embedded broker) also hands a new subscriber retained messages of other
    # topics, so keep only what matches.
    client.on_message = lambda _c, _u, message: (
        received.put(message) if paho.topic_matches_sub(topic, message.topic) else None
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        subscribed.get(timeout=10)
        yield received
    finally:
        client.disconnect()
        client.loop_stop()
