"""Measured, not asserted: what a Mosquitto kill -9 keeps of the QoS 1 messages queued for a
persistent session, with the time-based autosave we ship and with autosave_on_changes.

`pytest -m bench -s tests/bench/test_mosquitto_persistence.py` prints one JSON line per setting.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.faults.broker import Broker

QUEUED = 2000
SETTINGS = {
    "autosave_interval 60": ("autosave_interval 60",),
    "autosave_on_changes true, autosave_interval 1": (
        "autosave_on_changes true",
        "autosave_interval 1",
    ),
}


def _client(port: int, client_id: str, clean: bool) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=paho.MQTTv311,
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@pytest.mark.bench
@pytest.mark.parametrize("name", list(SETTINGS))
def test_what_a_kill_keeps(tmp_path: Path, name: str) -> None:
    broker = Broker(
        folder=tmp_path,
        settings=(
            "allow_anonymous true",
            "persistence true",
            "max_queued_messages 100000",
            *SETTINGS[name],
        ),
    )
    broker.start()
    try:
        subscriber = _client(broker.port, "queued-for", clean=False)
        subscriber.subscribe("t/#", qos=1)
        time.sleep(0.5)
        subscriber.disconnect()
        subscriber.loop_stop()
        publisher = _client(broker.port, "publisher", clean=True)
        started = time.perf_counter()
        for n in range(QUEUED):
            publisher.publish(f"t/{n}", b"x", qos=1).wait_for_publish()
        publish_s = time.perf_counter() - started
        publisher.disconnect()
        publisher.loop_stop()
        time.sleep(0.5)
        broker.end(signal.SIGKILL)
        broker.start()
        got: set[str] = set()
        again = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="queued-for",
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        again.on_message = lambda _c, _u, message: got.add(message.topic)
        again.connect("127.0.0.1", broker.port)
        again.loop_start()
        time.sleep(2)
        again.loop_stop()
    finally:
        broker.end(signal.SIGTERM)
    print(
        json.dumps(
            {
                "settings": name,
                "queued": QUEUED,
                "kept_after_kill": len(got),
                "publish_s": round(publish_s, 2),
            }
        )
    )
