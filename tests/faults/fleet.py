"""SOS presses from many devices over one socket, as cheaply as the 2 cores allow.

Each device presses once (``seq`` 1), or a stuck button presses many times (``seq`` 1, 2, …);
all QoS 1. The fleet keeps every PUBLISH until the broker's PUBACK, and sends it again (DUP)
after a reconnect, as a device's MQTT client does. With ``resend_s`` it is also the device of
the contract: an SOS whose Ack ``received`` has not come is published again with the same
``seq`` every ``resend_s`` seconds. It runs in a thread of the test; ``run`` returns when every
press is answered (or, without resending, acknowledged by the broker) or ``within_s`` passed.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from simulators.bench_publisher import connect_packet, mqtt_string, subscribe_packet, varint


@dataclass(frozen=True, kw_only=True)
class Press:
    device: str
    seq: int


@dataclass
class FleetReport:
    # monotonic_ns of each press's first PUBLISH, and of its first Ack `received`.
    sent_ns: dict[Press, int] = field(default_factory=dict)
    sent_wall: dict[Press, float] = field(default_factory=dict)  # time.time() of the same
    answered_ns: dict[Press, int] = field(default_factory=dict)
    resent: int = 0  # PUBLISHes of a press after its first (resends and DUPs)
    sends: dict[Press, int] = field(default_factory=dict)  # PUBLISHes of each press
    reconnects: int = 0
    # Acks received per (device, seq), to see whether one is answered twice.
    acks: int = 0


def presses(devices: list[str], stuck: str | None = None, stuck_presses: int = 0) -> list[Press]:
    """One press per device, with the stuck button's presses spread among them."""
    out = [Press(device=d, seq=1) for d in devices]
    if stuck is not None and stuck_presses:
        step = max(1, len(out) // stuck_presses)
        for n in range(stuck_presses):
            out.insert(min(len(out), n * (step + 1)), Press(device=stuck, seq=n + 1))
    return out


class SosFleet:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str = "anxin/v1",
        resend_s: float | None = None,
        client_id: str = "anxin-faults-fleet",
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.resend_s, self.client_id = resend_s, client_id
        self.report = FleetReport()
        self.stop = threading.Event()
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._packet_id = 0
        self._unacked: dict[int, Press] = {}  # broker PUBACK outstanding
        self._last_sent: dict[Press, float] = {}

    # the connection

    def _connect(self) -> bool:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(connect_packet(self.client_id))
            sock.sendall(subscribe_packet(1, f"{self.prefix}/+/ack", qos=0))
        except OSError:
            return False
        sock.setblocking(False)
        self._sock, self._buffer = sock, bytearray()
        # What the broker had not acknowledged goes again (a new connection: new packet ids).
        pending, self._unacked = list(self._unacked.values()), {}
        for press in pending:
            self._publish(press, again=True)
        return True

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            return
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view:
            try:
                view = view[self._sock.send(view) :]
            except BlockingIOError:
                self._read()
                if self._sock is None or time.monotonic() > deadline:
                    return
                select.select([], [self._sock], [], 0.05)
            except OSError:
                self._drop()
                return

    def _read(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop()
                return
            self._buffer += data
            self._packets()

    def _packets(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            length, shift, pos = 0, 0, 1
            while True:
                if pos >= len(buffer):
                    return
                byte = buffer[pos]
                length |= (byte & 0x7F) << shift
                pos += 1
                shift += 7
                if not byte & 0x80:
                    break
            if len(buffer) < pos + length:
                return
            header, body = buffer[0], bytes(buffer[pos : pos + length])
            del buffer[: pos + length]
            if header & 0xF0 == 0x40:  # PUBACK
                self._unacked.pop(struct.unpack_from("!H", body)[0], None)
            elif header & 0xF0 == 0x30:
                self._ack(header, body)

    def _ack(self, header: int, body: bytes) -> None:
        (size,) = struct.unpack_from("!H", body)
        topic = body[2 : 2 + size].decode()
        start = 2 + size + (2 if header & 0x06 else 0)
        try:
            ack = json.loads(body[start:])
        except ValueError:
            return
        if ack.get("status") != "received":
            return
        device = topic.rsplit("/", 2)[-2]
        self.report.acks += 1
        seq = ack.get("seq")
        now = time.monotonic_ns()
        # An Ack names its press by seq (contract §2); without one, the device's oldest open one.
        for press in [Press(device=device, seq=seq)] if isinstance(seq, int) else []:
            self.report.answered_ns.setdefault(press, now)
        if not isinstance(seq, int):
            for press in self._last_sent:
                if press.device == device and press not in self.report.answered_ns:
                    self.report.answered_ns[press] = now
                    break

    # the presses

    def _publish(self, press: Press, *, again: bool = False) -> None:
        self._packet_id = self._packet_id % 65535 + 1
        topic = f"{self.prefix}/{press.device}/sos".encode()
        payload = b'{"ts":%d,"seq":%d,"trigger":"button"}' % (time.time_ns() // 10**6, press.seq)
        head = mqtt_string(topic) + struct.pack("!H", self._packet_id)
        flags = 0x32 | (0x08 if again else 0)
        self._send(bytes([flags]) + varint(len(head) + len(payload)) + head + payload)
        self._unacked[self._packet_id] = press
        self._last_sent[press] = time.monotonic()
        if press not in self.report.sent_ns:
            self.report.sent_ns[press] = time.monotonic_ns()
            self.report.sent_wall[press] = time.time()
        self.report.sends[press] = self.report.sends.get(press, 0) + 1
        if again:
            self.report.resent += 1

    def run(self, plan: list[Press], *, rate_per_s: float, within_s: float) -> FleetReport:
        started = time.monotonic()
        deadline = started + within_s
        next_press = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            if self._sock is None:
                if not self._connect():
                    time.sleep(0.1)
                    continue
                if self.report.sent_ns:
                    self.report.reconnects += 1
            due = min(len(plan), int((now - started) * rate_per_s) + 1)
            chunk = plan[next_press:due]
            for press in chunk:
                self._publish(press)
            next_press += len(chunk)
            if self.resend_s is not None:
                for press, at in list(self._last_sent.items()):
                    if press not in self.report.answered_ns and now - at >= self.resend_s:
                        self._publish(press, again=True)
            if next_press == len(plan) and self._done():
                break
            if self._sock is not None:
                select.select([self._sock], [], [], 0.005)
                self._read()
        self._drop()
        return self.report

    def _done(self) -> bool:
        if self._unacked:
            return False
        if self.resend_s is None:
            return True
        return all(press in self.report.answered_ns for press in self._last_sent)


class Heartbeats:
    """Every device's QoS 0 heartbeat every ``every_s``, over one socket, in a thread."""

    def __init__(
        self, host: str, port: int, devices: list[str], every_s: float, prefix: str = "anxin/v1"
    ) -> None:
        self.host, self.port, self.devices, self.every_s = host, port, devices, every_s
        self.prefix = prefix
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.sendall(connect_packet("anxin-faults-heartbeats"))
        try:
            while not self._stop.is_set():
                ts = time.time_ns() // 10**6
                block = b"".join(
                    _qos0(f"{self.prefix}/{d}/heartbeat".encode(), b'{"ts":%d,"battery":90}' % ts)
                    for d in self.devices
                )
                sock.sendall(block)
                self.sent += len(self.devices)
                with contextlib.suppress(OSError):
                    sock.setblocking(False)
                    while sock.recv(1 << 16):
                        pass
                sock.setblocking(True)
                self._stop.wait(self.every_s)
        except OSError:
            pass
        finally:
            sock.close()


def _qos0(topic: bytes, payload: bytes) -> bytes:
    head = mqtt_string(topic)
    return b"\x30" + varint(len(head) + len(payload)) + head + payload
