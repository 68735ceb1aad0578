"""The floor of the same work in Python, for ``anxin bench same-work``: a bare paho subscriber
(QoS 1) that decodes each heartbeat's JSON and writes it to InfluxDB as line protocol, in
batches of 5,000 or every second, from a second thread. No rules, no SQL, no registry: what
any consumer of these heartbeats must at least do (the peer's ``same-work/bare.py``).

    python -m simulators.bench_floor MQTT_PORT INFLUX_PORT DATABASE TOPIC_PREFIX

It runs until it is stopped (SIGTERM)."""

from __future__ import annotations

import http.client
import json
import queue
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

BATCH = 5000
FLUSH_S = 1.0


class Floor:
    def __init__(self, influx_port: int, database: str) -> None:
        self._influx_port, self._database = influx_port, database
        self._batches: queue.Queue[list[str]] = queue.Queue()
        self._lines: list[str] = []
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()

    def on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        payload = json.loads(message.payload)
        device = message.topic.split("/")[-2]
        line = (
            f"heartbeat,device_id={device} battery={payload['battery']}i,"
            f"rssi={payload['rssi']}i {payload['ts']}"
        )
        with self._lock:
            self._lines.append(line)
            if len(self._lines) >= BATCH:
                self._flush()

    def flush_late(self) -> None:
        """What waits longer than FLUSH_S goes, even when no message comes to push it."""
        while True:
            time.sleep(0.2)
            with self._lock:
                if self._lines and time.monotonic() - self._flushed_at > FLUSH_S:
                    self._flush()

    def _flush(self) -> None:
        self._batches.put(self._lines)
        self._lines, self._flushed_at = [], time.monotonic()

    def write(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self._influx_port)
        while True:
            body = "\n".join(self._batches.get()).encode()
            connection.request("POST", f"/write?db={self._database}&precision=ms", body)
            connection.getresponse().read()


def main(argv: list[str]) -> None:
    mqtt_port, influx_port, database, prefix = int(argv[0]), int(argv[1]), argv[2], argv[3]
    floor = Floor(influx_port, database)
    threading.Thread(target=floor.write, name="writer", daemon=True).start()
    threading.Thread(target=floor.flush_late, name="flusher", daemon=True).start()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anxin-bench-floor")
    client.on_message = floor.on_message
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/+/heartbeat", qos=1)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
