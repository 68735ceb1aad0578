"""Recording live traffic: subscribe, and write every message as a line of a traffic file.

It stands where ingest stands (a subscriber of the broker), so a file it writes is what the
platform received: the time it arrived, topic, QoS, the retain flag as delivered, the payload.
A lost link and its return are written too (``{"link": "down"}`` / ``"up"``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.clock import Clock, system_clock
from ingest.mqtt import BrokerAddress
from simulators.traffic import LinkChange, TrafficMessage, TrafficWriter

FLUSH_EVERY_S = 1.0


@dataclass(kw_only=True)
class RecordCounts:
    messages: int = 0
    retained: int = 0
    binary: int = 0
    by_qos: Counter[int] = field(default_factory=Counter)
    link_changes: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Recorder:
    def __init__(
        self,
        broker: BrokerAddress,
        topics: Sequence[str],
        writer: TrafficWriter,
        *,
        client_id: str,
        clock: Clock = system_clock,
        max_messages: int | None = None,
    ) -> None:
        self._broker, self._topics, self._writer, self._clock = broker, topics, writer, clock
        self._max = max_messages
        self._lock = threading.Lock()
        self._connected_before = False
        self._link_up = False
        self.counts = RecordCounts()
        self.subscribed = threading.Event()
        self.done = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_message = self._message
        self._client = client

    def start(self) -> None:
        """Connect in the background (and keep reconnecting); OSError if the broker is not there
        at first."""
        self._client.connect(self._broker.host, self._broker.port, keepalive=30)
        self._client.loop_start()

    def run(self, stop: threading.Event, duration_s: float | None = None) -> RecordCounts:
        """Record until ``stop`` is set, the duration is over or enough messages came."""
        waited = 0.0
        while not stop.is_set() and not self.done.is_set():
            if duration_s is not None and waited >= duration_s:
                break
            step = FLUSH_EVERY_S if duration_s is None else min(FLUSH_EVERY_S, duration_s - waited)
            stop.wait(step)
            waited += step
            with self._lock:
                self._writer.flush()
        self.close()
        return self.counts

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            self._writer.flush()

    def _connected(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.counts.errors[f"connect refused: {reason}"] += 1
            return
        client.subscribe([(topic, 2) for topic in self._topics])
        with self._lock:
            if self._connected_before and not self._link_up:
                self._writer.write(LinkChange(time=self._clock(), up=True))
                self.counts.link_changes += 1
            self._connected_before = self._link_up = True

    def _disconnected(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            if self._link_up and not self.done.is_set() and reason != 0:
                self._writer.write(LinkChange(time=self._clock(), up=False))
                self.counts.link_changes += 1
            self._link_up = False

    def _message(self, _client: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        with self._lock:
            if self.done.is_set():
                return
            self._writer.write(
                TrafficMessage(
                    time=self._clock(),
                    topic=message.topic,
                    payload=payload,
                    qos=message.qos,
                    retain=bool(message.retain),
                )
            )
            counts = self.counts
            counts.messages += 1
            counts.by_qos[message.qos] += 1
            counts.retained += bool(message.retain)
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                counts.binary += 1
            if self._max is not None and counts.messages >= self._max:
                self.done.set()
