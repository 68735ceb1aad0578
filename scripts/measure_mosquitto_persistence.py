"""What Mosquitto's persistence keeps across its own kill -9, and what it costs.

For each autosave setting: a subscriber makes a persistent session (QoS 1, MQTT 5, session
expiry 1 h) on ``anxin/v1/+/sos`` and goes away; a publisher sends N QoS 1 messages (each one
PUBACKed: the broker has it); the broker is killed with SIGKILL and started again on the same
persistence folder; the subscriber comes back and counts what it gets.

    .venv/bin/python scripts/measure_mosquitto_persistence.py [N [SETTING-SUBSTRING]]

Prints one JSON line per setting: publish rate while queueing, how many of the N survived.
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.bench_broker import free_port, mosquitto_binary

SETTINGS = {
    "autosave_interval 60 (time)": ["autosave_interval 60"],
    "autosave_on_changes, every 1000": ["autosave_on_changes true", "autosave_interval 1000"],
    "autosave_on_changes, every 100": ["autosave_on_changes true", "autosave_interval 100"],
    "autosave_on_changes, every 10": ["autosave_on_changes true", "autosave_interval 10"],
}


def start(folder: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    config = folder / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"user {getpass.getuser()}",
                "persistence true",
                f"persistence_location {folder}/",
                "max_queued_messages 1000000",
                *extra,
                "",
            ]
        )
    )
    process = subprocess.Popen(  # noqa: S603 - our own broker binary and config
        [mosquitto_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        try:
            probe.connect("127.0.0.1", port)
            probe.disconnect()
            return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def client(
    port: int, client_id: str, *, persistent: bool
) -> tuple[paho.Client, queue.Queue[bytes]]:
    received: queue.Queue[bytes] = queue.Queue()
    mqtt = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    mqtt.on_message = lambda _c, _u, message: received.put(message.payload)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600 if persistent else 0
    mqtt.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
    mqtt.loop_start()
    return mqtt, received


def measure_online(extra: list[str], count: int) -> int:
    """Publish rate while the subscriber is connected and takes every message."""
    with tempfile.TemporaryDirectory(prefix="anxin-mosq-persist-") as tmp:
        folder, port = Path(tmp), free_port()
        broker = start(folder, port, extra)
        try:
            subscriber, received = client(port, "ingest", persistent=True)
            subscriber.subscribe("anxin/v1/+/sos", qos=1)
            time.sleep(0.3)
            publisher, _ = client(port, "device", persistent=False)
            started = time.monotonic()
            for n in range(count):
                publisher.publish(f"anxin/v1/p{n % 100}/sos", b"x", qos=1).wait_for_publish(10)
            for _ in range(count):
                received.get(timeout=10)
            took = time.monotonic() - started
            publisher.disconnect()
            subscriber.disconnect()
        finally:
            broker.send_signal(signal.SIGKILL)
            broker.wait()
    return round(count / took)


def measure(name: str, extra: list[str], count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="anxin-mosq-persist-") as tmp:
        folder, port = Path(tmp), free_port()
        broker = start(folder, port, extra)
        try:
            subscriber, _ = client(port, "ingest", persistent=True)
            subscriber.subscribe("anxin/v1/+/sos", qos=1)
            time.sleep(0.3)
            subscriber.disconnect()
            subscriber.loop_stop()
            publisher, _ = client(port, "device", persistent=False)
            started = time.monotonic()
            for n in range(count):
                message = publisher.publish(f"anxin/v1/p{n % 100}/sos", f"{n}".encode(), qos=1)
                message.wait_for_publish(10)
            took = time.monotonic() - started
            publisher.disconnect()
            publisher.loop_stop()
            size = sum(f.stat().st_size for f in folder.glob("*.db"))
            broker.send_signal(signal.SIGKILL)
            broker.wait()
            broker = start(folder, port, extra)
            subscriber, received = client(port, "ingest", persistent=True)
            got: set[bytes] = set()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(got) < count:
                try:
                    got.add(received.get(timeout=0.5))
                except queue.Empty:
                    if got or time.monotonic() > deadline - 3:
                        break
            subscriber.disconnect()
            subscriber.loop_stop()
        finally:
            broker.send_signal(signal.SIGKILL)
            broker.wait()
    return {
        "setting": name,
        "published": count,
        "online_publish_per_s": measure_online(extra, count),
        "queueing_publish_per_s": round(count / took),
        "db_bytes_before_kill": size,
        "survived_kill_9": len(got),
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    load = os.getloadavg()[0]
    for name, extra in SETTINGS.items():
        if only not in name:
            continue
        print(json.dumps({**measure(name, extra, count), "load_avg_1m": round(load, 1)}))


if __name__ == "__main__":
    main()
