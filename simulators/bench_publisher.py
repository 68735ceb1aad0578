"""The publisher process of ``anxin bench ingest``: heartbeats (and SOS presses) over MQTT.

It runs as its own process (``python -m simulators.bench_publisher PLAN_JSON``) so that
producing the load does not compete with the measured subscriber for one interpreter lock.
It speaks MQTT 3.1.1 over a plain socket and encodes packets itself: a PUBLISH costs a few
microseconds, and up to a thousand of them leave in one ``send``, so the publisher uses little
of the machine that the broker and the subscriber share with it.

Two modes:

- ``flood``: heartbeats as fast as the subscriber takes them. The parent writes, one line at a
  time on standard input, how many messages the subscriber has counted so far; the publisher
  stays at most ``window`` messages ahead of that, so the broker's queue for the subscriber
  stays bounded and nothing is dropped, and every message published is counted in the end.
- ``paced``: heartbeats at ``rate`` per second, and an SOS (QoS 1, each from another device)
  every ``sos_interval_s``, while listening to the devices' Ack downlink to time it.

Standard output carries JSON lines: ``{"published": n}`` now and then, and a last line with
the totals, the SOS send times and the Ack receive times (``time.monotonic_ns``: one clock for
every process of the machine). End of standard input stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

CHUNK = 1000  # messages per send
PROGRESS_EVERY_S = 0.25
# How long a paced run waits after its last SOS for the Acks still on their way.
ACK_GRACE_S = 3.0


@dataclass(frozen=True, kw_only=True)
class PublisherPlan:
    host: str
    port: int
    prefix: str
    devices: list[str]
    mode: Literal["flood", "paced"]
    duration_s: float
    max_messages: int | None = None
    qos: int = 0
    # flood: how far ahead of the subscriber's count the publisher may be.
    window: int = 20_000
    # paced: heartbeats per second, and an SOS every this many seconds (0: none).
    rate: float = 1000.0
    sos_interval_s: float = 0.0
    client_id: str = "anxin-bench-publisher"

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> PublisherPlan:
        return cls(**json.loads(text))


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def mqtt_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str) -> bytes:
    # MQTT 3.1.1, clean session, no keepalive (a bench run is short and always sending).
    body = mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + mqtt_string(client_id)
    return b"\x10" + varint(len(body)) + body


def subscribe_packet(packet_id: int, topic_filter: str, qos: int = 0) -> bytes:
    body = struct.pack("!H", packet_id) + mqtt_string(topic_filter) + bytes([qos])
    return b"\x82" + varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    head = mqtt_string(topic)
    if qos:
        head += struct.pack("!H", packet_id)
    return bytes([0x30 | (qos << 1)]) + varint(len(head) + len(payload)) + head + payload


@dataclass
class _Incoming:
    """Packets from the broker: CONNACK, SUBACK, PUBACK, and PUBLISHes of the Ack downlink."""

    buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        packets: list[tuple[int, bytes]] = []
        while len(self.buffer) >= 2:
            length, multiplier, pos = 0, 1, 1
            while True:
                if pos >= len(self.buffer):
                    return packets
                byte = self.buffer[pos]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                pos += 1
                if not byte & 0x80:
                    break
            if len(self.buffer) < pos + length:
                return packets
            packets.append((self.buffer[0], bytes(self.buffer[pos : pos + length])))
            del self.buffer[: pos + length]
        return packets


class Publisher:
    def __init__(self, plan: PublisherPlan) -> None:
        self.plan = plan
        self.sock = socket.create_connection((plan.host, plan.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming = _Incoming()
        self.published = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.counted = 0  # what the parent says the subscriber has counted
        self.stdin_open = True
        self.stdin_buffer = b""
        self.seq = [0] * len(plan.devices)
        self.next_device = 0
        self.packet_id = 0
        self.sos_sent: list[tuple[str, int]] = []
        self.acks: list[tuple[str, int]] = []
        # For the progress lines: when each device's SOS left, and the Acks not yet reported.
        self._sos_sent_ns: dict[str, int] = {}
        self._acks_reported = 0
        prefix = plan.prefix.encode()
        self.heartbeat_topics = [prefix + b"/" + d.encode() + b"/heartbeat" for d in plan.devices]
        self.ack_suffix = b"/ack"
        self.last_progress = 0.0

    # the connection

    def handshake(self) -> None:
        self.sock.sendall(connect_packet(self.plan.client_id))
        self._wait_for(0x20, "CONNACK")
        if self.plan.sos_interval_s > 0:
            self.sock.sendall(subscribe_packet(1, f"{self.plan.prefix}/+/ack", qos=0))
            self._wait_for(0x90, "SUBACK")
        self.sock.setblocking(False)

    def _wait_for(self, kind: int, name: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"the broker closed the connection before the {name}")
            for header, body in self.incoming.feed(data):
                if header & 0xF0 == kind:
                    if kind == 0x20 and body[1] != 0:
                        raise ConnectionError(f"the broker refused the connection ({body[1]})")
                    return
        raise TimeoutError(f"no {name} from the broker")

    def read_socket(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            if not data:
                raise ConnectionError("the broker closed the connection")
            now = time.monotonic_ns()
            for header, body in self.incoming.feed(data):
                if header & 0xF0 == 0x30:  # an Ack published to a device
                    (topic_length,) = struct.unpack_from("!H", body)
                    topic = body[2 : 2 + topic_length]
                    if topic.endswith(self.ack_suffix):
                        device = topic[: -len(self.ack_suffix)].rsplit(b"/", 1)[-1]
                        self.acks.append((device.decode(), now))

    def read_stdin(self) -> None:
        try:
            data = os.read(sys.stdin.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            self.stdin_open = False
            return
        self.stdin_buffer += data
        *lines, self.stdin_buffer = self.stdin_buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.counted = max(self.counted, int(line))

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                self.read_socket()  # the broker may be waiting for us to read its PUBACKs
                select.select([], [self.sock], [], 0.05)
                continue
            view = view[sent:]

    # the messages

    def heartbeats(self, count: int) -> bytes:
        plan, devices, seqs, topics = (
            self.plan,
            len(self.plan.devices),
            self.seq,
            self.heartbeat_topics,
        )
        ts_ms = time.time_ns() // 1_000_000
        qos_bit = plan.qos << 1
        parts = []
        for _ in range(count):
            index = self.next_device
            self.next_device = (index + 1) % devices
            seqs[index] += 1
            payload = b'{"ts":%d,"seq":%d,"battery":%d,"rssi":%d}' % (
                ts_ms,
                seqs[index],
                60 + index % 40,
                -(55 + index % 40),
            )
            topic = topics[index]
            if plan.qos:
                self.packet_id = self.packet_id % 65535 + 1
                head = struct.pack("!H", len(topic)) + topic + struct.pack("!H", self.packet_id)
            else:
                head = struct.pack("!H", len(topic)) + topic
            parts.append(
                bytes([0x30 | qos_bit]) + varint(len(head) + len(payload)) + head + payload
            )
        return b"".join(parts)

    def sos(self, number: int) -> tuple[str, bytes]:
        device = self.plan.devices[number % len(self.plan.devices)]
        body = {
            "ts": time.time_ns() // 1_000_000,
            "seq": number // len(self.plan.devices) + 1,
            "trigger": "button",
            "location": {"room": "卧室"},
        }
        self.packet_id = self.packet_id % 65535 + 1
        topic = f"{self.plan.prefix}/{device}/sos".encode()
        payload = json.dumps(body, ensure_ascii=False).encode()
        return device, publish_packet(topic, payload, qos=1, packet_id=self.packet_id)

    def _published(self, count: int) -> None:
        now = time.monotonic_ns()
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = now
        self.published += count

    # the runs

    def run(self) -> None:
        os.set_blocking(sys.stdin.fileno(), False)
        started = time.monotonic()
        deadline = started + self.plan.duration_s
        if self.plan.mode == "flood":
            self._flood(deadline)
        else:
            self._paced(started, deadline)
        self.sock.setblocking(True)
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT: the broker reads everything before it
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(5)
            while self.sock.recv(65536):
                pass
        self.sock.close()

    def _left(self) -> int:
        if self.plan.max_messages is None:
            return CHUNK
        return min(CHUNK, self.plan.max_messages - self.published)

    def _flood(self, deadline: float) -> None:
        while self.stdin_open and time.monotonic() < deadline and self._left() > 0:
            allowed = min(self._left(), self.counted + self.plan.window - self.published)
            if allowed > 0:
                self.send(self.heartbeats(allowed))
                self._published(allowed)
                self.read_socket()
                self.read_stdin()
            else:
                ready, _, _ = select.select([sys.stdin, self.sock], [], [], 0.05)
                if self.sock in ready:
                    self.read_socket()
                if sys.stdin in ready:
                    self.read_stdin()
            self._progress()

    def _paced(self, started: float, deadline: float) -> None:
        plan = self.plan
        tick_s = 0.005
        next_sos = started + plan.sos_interval_s if plan.sos_interval_s > 0 else float("inf")
        sos_number = 0
        while self.stdin_open and self._left() > 0:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_sos:
                device, packet = self.sos(sos_number)
                sent_ns = time.monotonic_ns()
                self.send(packet)
                self.sos_sent.append((device, sent_ns))
                self._sos_sent_ns[device] = sent_ns
                sos_number += 1
                next_sos += plan.sos_interval_s
            due = min(self._left(), int((now - started) * plan.rate) - self.published)
            if due > 0:
                self.send(self.heartbeats(due))
                self._published(due)
            self._progress()
            wait = max(0.0, min(next_sos, time.monotonic() + tick_s) - time.monotonic())
            ready, _, _ = select.select([sys.stdin, self.sock], [], [], wait)
            if self.sock in ready:
                self.read_socket()
            if sys.stdin in ready:
                self.read_stdin()
        grace_until = time.monotonic() + ACK_GRACE_S
        while self.stdin_open and len(self.acks) < len(self.sos_sent):
            left = grace_until - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sys.stdin, self.sock], [], [], left)
            if self.sock in ready:
                self.read_socket()
            if sys.stdin in ready:
                self.read_stdin()

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY_S:
            self.last_progress = now
            line: dict[str, Any] = {"published": self.published}
            if len(self.acks) > self._acks_reported:
                # The SOS-to-Ack times of the Acks received since the last line, in ms.
                line["ack_ms"] = [
                    round((at - self._sos_sent_ns[device]) / 1e6, 2)
                    for device, at in self.acks[self._acks_reported :]
                    if device in self._sos_sent_ns
                ]
                self._acks_reported = len(self.acks)
            _emit(line)

    def report(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "done": True,
            "published": self.published,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "sos": self.sos_sent,
            "acks": self.acks,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main() -> None:
    plan = PublisherPlan.from_json(sys.argv[1])
    publisher = Publisher(plan)
    publisher.handshake()
    _emit({"connected": True})
    try:
        publisher.run()
    except (BrokenPipeError, ConnectionError) as error:
        _emit({**publisher.report(), "error": str(error)})
        sys.exit(1)
    _emit(publisher.report())


if __name__ == "__main__":
    main()
