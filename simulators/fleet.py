"""A small virtual fleet for the demo: heartbeats, and an SOS press now and then.

Each device has its own MQTT client with a retained ``offline`` last will, as real devices do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.catalogue import CATALOGUE
from devices.clock import Clock, system_clock
from devices.topics import DEFAULT_PREFIX, Uplink, uplink_topic

log = structlog.get_logger(__name__)

ROOMS = ("卧室", "客厅", "卫生间", "厨房")


@dataclass(frozen=True, kw_only=True, slots=True)
class VirtualDevice:
    device_id: str
    model: str


@dataclass(kw_only=True, slots=True)
class _DeviceState:
    device: VirtualDevice
    client: paho.Client
    seq: int = 0
    battery: float = 100.0
    next_heartbeat: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetPlan:
    heartbeat_s: float = 10.0
    # Mean time between two SOS presses of one device.
    sos_every_s: float = 120.0
    # Mean time between two movements a motion sensor reports.
    motion_every_s: float = 60.0
    tick_s: float = 1.0
    seed: int = 12349
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311


@dataclass(kw_only=True, slots=True)
class FleetCounts:
    heartbeats: int = 0
    sos: int = 0
    by_device: dict[str, int] = field(default_factory=dict)


class DemoFleet:
    def __init__(
        self,
        host: str,
        port: int,
        devices: Sequence[VirtualDevice],
        plan: FleetPlan | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Clock = system_clock,
    ) -> None:
        self._host, self._port, self._devices = host, port, devices
        self._plan = plan or FleetPlan()
        self._prefix, self._clock = prefix, clock
        self._random = random.Random(self._plan.seed)  # noqa: S311 - a simulation, not crypto
        self.counts = FleetCounts()

    async def run(self, stop: asyncio.Event) -> None:
        states = [self._connect(device) for device in self._devices]
        elapsed = 0.0
        try:
            for index, state in enumerate(states):
                # Spread the heartbeats over the interval instead of all at once.
                state.next_heartbeat = index * self._plan.heartbeat_s / max(len(states), 1)
            while not stop.is_set():
                for state in states:
                    self._tick(state, elapsed)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._plan.tick_s)
                elapsed += self._plan.tick_s
        finally:
            for state in states:
                state.client.disconnect()
                state.client.loop_stop()

    def _connect(self, device: VirtualDevice) -> _DeviceState:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{device.device_id}",
            protocol=self._plan.protocol,
        )
        status = uplink_topic(device.device_id, Uplink.STATUS, self._prefix)
        client.will_set(status, b"offline", qos=1, retain=True)
        client.on_connect = lambda c, *_: c.publish(status, b"online", qos=1, retain=True)
        client.connect_async(self._host, self._port, keepalive=60)
        client.loop_start()
        return _DeviceState(device=device, client=client)

    def _tick(self, state: _DeviceState, elapsed: float) -> None:
        plan = self._plan
        if elapsed >= state.next_heartbeat:
            state.next_heartbeat = elapsed + plan.heartbeat_s
            state.battery = max(0.0, state.battery - self._random.uniform(0, 0.05))
            self._publish(state, Uplink.HEARTBEAT, {"rssi": -self._random.randint(55, 95)}, qos=0)
            self.counts.heartbeats += 1
        # What the model can do: an SOS from those with a button (a model the catalogue does
        # not know: any), movement from motion sensors; smoke detectors and the like only
        # heartbeat (their alarms are the scenarios' to raise).
        model = CATALOGUE.get(state.device.model)
        if (model is None or model.sos) and self._random.random() < plan.tick_s / plan.sos_every_s:
            body = {"trigger": "button", "location": {"room": self._random.choice(ROOMS)}}
            self._publish(state, Uplink.SOS, body, qos=1)
            self.counts.sos += 1
            log.info("fleet.sos_pressed", device_id=state.device.device_id)
        moves = model is not None and "motion" in model.events and not model.sos
        if moves and self._random.random() < plan.tick_s / plan.motion_every_s:
            self._publish(state, Uplink.EVENT, {"type": "motion"}, qos=1)

    def _publish(
        self, state: _DeviceState, kind: Uplink, body: Mapping[str, object], qos: int
    ) -> None:
        state.seq += 1
        payload = {
            "ts": self._clock().isoformat(),
            "seq": state.seq,
            "battery": round(state.battery, 1),
            **body,
        }
        topic = uplink_topic(state.device.device_id, kind, self._prefix)
        state.client.publish(topic, json.dumps(payload, ensure_ascii=False).encode(), qos=qos)
        self.counts.by_device[state.device.device_id] = (
            self.counts.by_device.get(state.device.device_id, 0) + 1
        )
