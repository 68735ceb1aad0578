"""The virtual fleet live over MQTT: paho clients on one asyncio loop.

Two ways to connect:

- one connection per device (``connections=0``): client id = device id, a retained ``offline``
  last will on ``…/status`` and a retained ``online`` once connected, as real devices do; a lost
  link is a socket dropped without DISCONNECT, so the broker itself publishes the will.
- multiplexed (``connections=N``): N connections publish for every device, for load; no
  per-device will (the broker cannot know a device behind a shared connection is gone).

The paho clients run on the asyncio loop through paho's socket callbacks (its documented
external-loop use), so thousands of them need no thread each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from devices.topics import Uplink
from ingest.mqtt import BrokerAddress
from simulators.behaviours import BEHAVIOURS, MOTION_PER_HOUR, QUIET, Emission
from simulators.scenario import Scenario
from simulators.sos_resend import RESEND_EVERY_S, SosResends
from simulators.traffic import LinkChange
from simulators.virtual_devices import Encoder, fleet_stream
from simulators.watch_live import WatchLink

if TYPE_CHECKING:
    from simulators.dc09_live import Dc09Reporter

KEEPALIVE_S = 60
CONNECTS_PER_S = 1000  # a connection storm the size of the fleet, but paced
MISC_EVERY_S = 2.0  # paho's keepalive bookkeeping


@dataclass(kw_only=True)
class LiveCounts:
    by_kind: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    connected: int = 0
    links: int = 0
    published: int = 0
    virtual_now: datetime | None = None
    # Seconds spent connecting, and publishing the traffic (the rate is over the latter).
    connect_s: float = 0.0
    publish_s: float = 0.0
    # The device side of an SOS: sent again until its Ack `received` came (contract §1).
    sos_resent: int = 0
    sos_answered: int = 0
    sos_unanswered: int = 0


# (device id, Ack payload) for each Ack a link receives.
AckHandler = Callable[[str, bytes], None]


class _Link:
    """One paho client driven by the asyncio loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        broker: BrokerAddress,
        client_id: str,
        counts: LiveCounts,
        status: tuple[str, bytes, bytes] | None,
        acks: tuple[str, AckHandler] | None = None,
    ) -> None:
        self.loop, self.broker, self.counts = loop, broker, counts
        # The Ack downlink to read (its filter) and whom to tell.
        self.acks = acks
        # Availability: topic, online payload, offline payload (also the last will).
        self.status = status
        self.up = False
        self.wanted = True
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set()
        if status is not None:
            client.will_set(status[0], status[2], qos=1, retain=True)
        client.max_inflight_messages_set(100)
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        # No write callbacks: paho then sends a packet at once (one send, no epoll change),
        # and only what the socket cannot take yet waits for the loop (``flush_later``).
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        self.client = client

    def _message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if self.acks is not None and message.topic.endswith("/ack"):
            self.acks[1](message.topic.rsplit("/", 2)[-2], bytes(message.payload))

    def _opened(self, client: paho.Client, _userdata: Any, sock: Any) -> None:
        self.loop.add_reader(sock, client.loop_read)

    def flush_later(self) -> None:
        sock = self.client.socket()
        if self.client.want_write() and sock is not None:
            self.loop.add_writer(sock, self._flush)

    def _flush(self) -> None:
        self.client.loop_write()
        sock = self.client.socket()
        if not self.client.want_write() and sock is not None:
            self.loop.remove_writer(sock)

    def _closed(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)

    def _connected(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.counts.errors[f"connect refused: {reason}"] += 1
            return
        self.up = True
        self.counts.connected += 1
        if self.acks is not None:
            client.subscribe(self.acks[0], qos=1)
            self.loop.call_soon(self.flush_later)
        if self.status is not None:
            client.publish(self.status[0], self.status[1], qos=1, retain=True)
            self.counts.by_kind["status"] += 1
            # Inside paho's read handler a publish is queued, not sent: send it from the loop.
            self.loop.call_soon(self.flush_later)

    def _disconnected(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.up:
            self.counts.connected -= 1
        self.up = False
        if self.wanted:
            self.counts.errors[f"connection lost: {reason}"] += 1

    def connect(self) -> None:
        if self.up:  # reconnecting before paho noticed the old link was gone
            self.up = False
            self.counts.connected -= 1
        self.wanted = True
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            self.counts.errors[f"cannot connect: {exc.strerror or exc}"] += 1

    def drop(self) -> None:
        """The link dies without a DISCONNECT: the broker publishes the last will."""
        self.wanted = False
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.counts.errors[f"publish: {paho.error_string(info.rc)}"] += 1
            return False
        self.flush_later()
        return True

    def close(self) -> None:
        self.wanted = False
        if self.up and self.status is not None:
            # Going away on purpose: say so (a clean DISCONNECT does not fire the will).
            self.client.publish(self.status[0], self.status[2], qos=1, retain=True)
        self.client.disconnect()


def natural_rate(scenario: Scenario) -> float:
    """Messages a second the fleet sends at its own pace (heartbeats and typical activity)."""
    per_s = 0.0
    for device in scenario.devices:
        behaviour = BEHAVIOURS.get(device.model.name, QUIET)
        per_s += 1 / device.model.heartbeat_s
        for every_s in (
            behaviour.climate_every_s,
            behaviour.vitals_every_s,
            behaviour.positions_every_s,
        ):
            if every_s:
                per_s += 1 / every_s
        if behaviour.activity == "motion":
            per_s += sum(MOTION_PER_HOUR) / 24 * behaviour.activity_scale / 3600
        elif behaviour.activity is not None:
            per_s += 5 / 86400
    return per_s


class LiveFleet:
    def __init__(
        self,
        scenario: Scenario,
        broker: BrokerAddress,
        *,
        prefix: str,
        connections: int = 0,
        speed: float = 1.0,
        sos_resend_s: float = RESEND_EVERY_S,
        dc09: Dc09Reporter | None = None,
        watch_gateway: tuple[str, int] | None = None,
    ) -> None:
        self.scenario, self.broker, self.prefix = scenario, broker, prefix
        self.connections, self.speed = connections, speed
        # The hubs that report over DC-09 instead of MQTT (simulators/dc09_live.py).
        self.dc09 = dc09
        self.watch_gateway = watch_gateway
        self.counts = LiveCounts()
        self.resends = SosResends(sos_resend_s)
        self._links: dict[str, _Link] = {}
        self._shared: list[_Link] = []
        # Watches (protocol: watch) speak TCP to the watch gateway, not MQTT.
        self._watches: dict[str, WatchLink] = {}

    async def run(self, stop: asyncio.Event, duration_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        misc = asyncio.create_task(self._misc(stop), name="sim-keepalive")
        resending = asyncio.create_task(self._resend(stop), name="sim-sos-resend")
        try:
            began = loop.time()
            await self._connect_all(loop, stop)
            self.counts.connect_s = loop.time() - began
            if not stop.is_set():
                began = loop.time()
                try:
                    await self._publish(stop, duration_s)
                finally:
                    self.counts.publish_s = loop.time() - began
                await self._await_answers(stop)
        finally:
            resending.cancel()
            self._count_resends()
            await self._close_all()
            if self.dc09 is not None:
                await self.dc09.close()
            misc.cancel()

    async def _connect_all(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        pid = os.getpid()
        await self._connect_watches(stop)
        if all(device.watch for device in self.scenario.devices):
            return
        if self.connections:
            # The first shared connection reads every device's Acks.
            every_ack = (f"{self.prefix}/+/ack", self._on_ack)
            self._shared = [
                _Link(
                    loop,
                    self.broker,
                    f"anxin-sim-{pid}-{n}",
                    self.counts,
                    None,
                    every_ack if n == 0 else None,
                )
                for n in range(self.connections)
            ]
            links = self._shared
        else:
            encoder = Encoder(self.prefix, self.scenario.devices)
            for device in self.scenario.devices:
                if device.watch or (self.dc09 is not None and self.dc09.handles(device.device_id)):
                    continue
                topic, online = encoder.status(device, True)
                status = (topic, online, encoder.status(device, False)[1])
                acks = None
                if device.model.sos:
                    acks = (f"{self.prefix}/{device.device_id}/ack", self._on_ack)
                self._links[device.device_id] = _Link(
                    loop, self.broker, device.device_id, self.counts, status, acks
                )
            links = list(self._links.values())
        self.counts.links = len(links)
        for number, link in enumerate(links):
            if stop.is_set():
                return
            link.connect()
            if number % 100 == 99:
                await asyncio.sleep(100 / CONNECTS_PER_S)
        deadline = loop.time() + 30
        while self.counts.connected + sum(self.counts.errors.values()) < len(links):
            if stop.is_set() or loop.time() > deadline:
                return
            await asyncio.sleep(0.05)

    async def _connect_watches(self, stop: asyncio.Event) -> None:
        watches = [device for device in self.scenario.devices if device.watch]
        if not watches:
            return
        if self.watch_gateway is None:
            self.counts.errors["watches but no watch gateway address"] += len(watches)
            return
        for number, device in enumerate(watches):
            if stop.is_set():
                return
            link = WatchLink(
                device.device_id, self.watch_gateway, self.counts.by_kind, self.counts.errors
            )
            self._watches[device.device_id] = link
            if await link.connect():
                self.counts.connected += 1
            if number % 100 == 99:
                await asyncio.sleep(100 / CONNECTS_PER_S)
        self.counts.links += len(watches)

    def _link_of(self, device_id: str) -> _Link:
        if self._shared:
            return self._shared[zlib.crc32(device_id.encode()) % len(self._shared)]
        return self._links[device_id]

    async def _publish(self, stop: asyncio.Event, duration_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        encoder = Encoder(self.prefix, self.scenario.devices)
        started = loop.time()
        origin = self.scenario.start
        for number, item in enumerate(self._stream()):
            moment = item.at if isinstance(item, Emission) else item.time
            due = started + (moment - origin).total_seconds() / self.speed
            if duration_s is not None and (
                due - started > duration_s or loop.time() - started > duration_s
            ):
                break  # the duration is wall time, also when publishing fell behind
            delay = due - loop.time()
            if delay > 0.002 or number % 200 == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(delay, 0))
            if stop.is_set():
                break
            if isinstance(item, LinkChange):
                self._broker_outage(item)
                continue
            self._send(item, encoder)
        if duration_s is not None and not stop.is_set():
            remaining = started + duration_s - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(remaining, 0))

    def _stream(self) -> Iterator[Emission | LinkChange]:
        sc = self.scenario
        emissions = fleet_stream(sc.plans, sc.seed, sc.start, sc.end, sc.zone)
        links = sorted(sc.links, key=lambda link: link.time)
        for emission in emissions:
            while links and links[0].time <= emission.at:
                yield links.pop(0)
            yield emission

    def _send(self, emission: Emission, encoder: Encoder) -> None:
        self.counts.virtual_now = emission.at
        watch = self._watches.get(emission.device_id)
        if watch is not None:
            if emission.by_broker or emission.kind is Uplink.STATUS:
                return  # a watch has no status message: its connection is its presence
            if watch.send(emission, datetime.now(UTC)):
                self.counts.by_kind[emission.event_type or emission.kind.value] += 1
                self.counts.published += 1
            return
        if self.dc09 is not None and self.dc09.handles(emission.device_id):
            if not emission.by_broker:
                self.dc09.send(emission, datetime.now(UTC))
                self.counts.by_kind[f"dc09 {emission.event_type or emission.kind.value}"] += 1
            return
        link = self._link_of(emission.device_id)
        if emission.by_broker:
            if not self._shared:
                link.drop()  # its will, published by the broker
            return
        if emission.kind is Uplink.STATUS and not self._shared:
            if not link.wanted:
                link.connect()  # back: it says `online` once connected
            return
        if not link.up:
            self.counts.errors["not connected"] += 1
            return
        message = encoder.encode(emission, datetime.now(UTC))
        if message is None:
            return  # a Zigbee device has no way to say it
        if link.publish(message[0], message[1], emission.qos, emission.retain):
            self.counts.by_kind[emission.event_type or emission.kind.value] += 1
            self.counts.published += 1
            if emission.kind is Uplink.SOS:
                self.resends.pressed(emission.device_id, message[0], message[1], time.monotonic())

    async def _await_answers(self, stop: asyncio.Event) -> None:
        """The traffic is over, but a device keeps resending an SOS nobody answered: give the
        last presses three rounds of resending (at most a minute) to be answered."""
        deadline = asyncio.get_running_loop().time() + min(60.0, 3 * self.resends.resend_s)
        while self.resends.unanswered and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
            if stop.is_set():
                return

    def _on_ack(self, device_id: str, payload: bytes) -> None:
        self.resends.acked(device_id, payload)

    async def _resend(self, stop: asyncio.Event) -> None:
        """An unanswered SOS again, with its seq, every ``sos_resend_s`` (contract §1)."""
        tick_s = min(1.0, self.resends.resend_s / 4)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)
            for device_id, topic, payload in self.resends.due(time.monotonic()):
                link = self._link_of(device_id)
                if link.up and link.publish(topic, payload, 1, False):
                    self.counts.sos_resent += 1
            self._count_resends()

    def _count_resends(self) -> None:
        self.counts.sos_answered = self.resends.answered
        self.counts.sos_unanswered = self.resends.unanswered

    def _broker_outage(self, change: LinkChange) -> None:
        """Live, an outage of the broker is every device losing it (the platform's own link is
        not ours to cut); the devices come back with their `online` status."""
        if not change.up and not self._shared:
            for link in self._links.values():
                link.drop()

    async def _misc(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for link in (*self._links.values(), *self._shared):
                if link.up:
                    link.client.loop_misc()
                    link.flush_later()
            for watch in self._watches.values():
                watch.resend_due()
            await asyncio.sleep(MISC_EVERY_S)

    async def _close_all(self) -> None:
        for watch in self._watches.values():
            await watch.close()
        links = [*self._links.values(), *self._shared]
        for number, link in enumerate(links):
            link.close()
            link.flush_later()
            if number % 500 == 499:
                await asyncio.sleep(0)
        deadline = asyncio.get_running_loop().time() + 5
        while any(link.client.want_write() for link in links if link.client.socket()):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_with_signals(
    fleet: LiveFleet, duration_s: float | None, on_tick: Callable[[float], None]
) -> bool:
    """Run until the duration ends or SIGINT/SIGTERM; True when stopped by a signal."""
    stop = asyncio.Event()
    interrupted = False
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    started = time.monotonic()

    async def ticker() -> None:
        while not stop.is_set():
            on_tick(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)

    display = asyncio.create_task(ticker(), name="sim-display")
    try:
        await fleet.run(stop, duration_s)
    finally:
        stop.set()
        await display
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return interrupted
