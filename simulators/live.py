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
from simulators.traffic import LinkChange
from simulators.virtual_devices import Encoder, fleet_stream

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


class _Link:
    """One paho client driven by the asyncio loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        broker: BrokerAddress,
        client_id: str,
        counts: LiveCounts,
        status: tuple[str, bytes, bytes] | None,
    ) -> None:
        self.loop, self.broker, self.counts = loop, broker, counts
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
        self.client = client

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
        if behaviour.climate_every_s:
            per_s += 1 / behaviour.climate_every_s
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
        dc09: Dc09Reporter | None = None,
    ) -> None:
        self.scenario, self.broker, self.prefix = scenario, broker, prefix
        self.connections, self.speed = connections, speed
        # The hubs that report over DC-09 instead of MQTT (simulators/dc09_live.py).
        self.dc09 = dc09
        self.counts = LiveCounts()
        self._links: dict[str, _Link] = {}
        self._shared: list[_Link] = []

    async def run(self, stop: asyncio.Event, duration_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        misc = asyncio.create_task(self._misc(stop), name="sim-keepalive")
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
        finally:
            await self._close_all()
            if self.dc09 is not None:
                await self.dc09.close()
            misc.cancel()

    async def _connect_all(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        pid = os.getpid()
        if self.connections:
            self._shared = [
                _Link(loop, self.broker, f"anxin-sim-{pid}-{n}", self.counts, None)
                for n in range(self.connections)
            ]
            links = self._shared
        else:
            encoder = Encoder(self.prefix, self.scenario.devices)
            for device in self.scenario.devices:
                if self.dc09 is not None and self.dc09.handles(device.device_id):
                    continue
                topic, online = encoder.status(device, True)
                status = (topic, online, encoder.status(device, False)[1])
                self._links[device.device_id] = _Link(
                    loop, self.broker, device.device_id, self.counts, status
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
            await asyncio.sleep(MISC_EVERY_S)

    async def _close_all(self) -> None:
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
