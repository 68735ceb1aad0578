"""The virtual fleet: homes with their devices, each device's traffic as one ordered stream,
and the registry CSV that `anxin devices import` reads to know them."""

from __future__ import annotations

import csv
import heapq
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from devices.catalogue import DeviceModel
from devices.topics import Uplink, uplink_topic
from devices.zigbee2mqtt import DEFAULT_BASE_TOPIC
from simulators.behaviours import (
    ACTIVITY_EVENTS,
    HOUR,
    Emission,
    battery_level,
    routine,
    rssi_of,
)
from simulators.zigbee_encoding import ZigbeeState, availability

DEFAULT_PREFIX = "sim"
ROOMS = {
    "sos-pendant": "随身", "sos-button": "卧室", "pull-cord": "卫生间", "fall-detector": "卫生间",
    "4g-elder-phone": "随身", "smoke-detector": "厨房", "gas-detector": "厨房",
    "co-detector": "客厅", "water-leak": "卫生间", "door-contact": "大门", "pir-motion": "客厅",
    "bed-sensor": "卧室", "temperature-sensor": "卧室", "zigbee-gateway": "客厅",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class Home:
    """One elder's home, numbered from 1 across the fleet."""

    number: int
    elder_id: str
    building: int
    community: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class VirtualDevice:
    device_id: str
    model: DeviceModel
    home: Home
    room: str
    # Published through Zigbee2MQTT under this friendly name, instead of natively.
    zigbee_name: str | None = None
    # Live, reported over SIA DC-09 to a receiver (simulators/dc09_live.py), not over MQTT.
    dc09: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, kw_only=True, slots=True)
class Silence(Window):
    """The device sends nothing: its link is gone (``network``, ``power``) or the broker is
    unreachable (``broker``: what it must send, QoS 1, it sends once it is back)."""

    cause: str


@dataclass(kw_only=True, slots=True)
class DevicePlan:
    """A device and what the scenario does to it."""

    device: VirtualDevice
    extra: list[Emission] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    quiet: list[Window] = field(default_factory=list)
    # (from, level): the battery reads ``level`` from then on.
    batteries: list[tuple[datetime, float]] = field(default_factory=list)
    # Telemetry temperature_c forced to a value within a window.
    temperatures: list[tuple[Window, float]] = field(default_factory=list)


def device_id_for(prefix: str, home: int, model: str, nth: int = 1) -> str:
    suffix = f"-{nth}" if nth > 1 else ""
    return f"{prefix}-{home:05d}-{model}{suffix}"


def build_home(
    number: int,
    models: Sequence[DeviceModel],
    *,
    prefix: str = DEFAULT_PREFIX,
    building: int = 1,
    community: str | None = None,
    categories: Sequence[str] = (),
    zigbee: bool = False,
    dc09: bool = False,
) -> list[VirtualDevice]:
    home = Home(
        number=number,
        elder_id=f"{prefix}-{number:05d}",
        building=building,
        community=community,
        categories=tuple(categories),
    )
    seen: dict[str, int] = {}
    devices = []
    for model in models:
        seen[model.name] = seen.get(model.name, 0) + 1
        device_id = device_id_for(prefix, number, model.name, seen[model.name])
        devices.append(
            VirtualDevice(
                device_id=device_id,
                model=model,
                home=home,
                room=ROOMS.get(model.name, "客厅"),
                zigbee_name=device_id if zigbee else None,
                dc09=dc09,
            )
        )
    return devices


def simple_fleet(
    count: int, models: Sequence[DeviceModel], prefix: str = DEFAULT_PREFIX
) -> list[VirtualDevice]:
    """``count`` devices, one of each model per home (the last home may have fewer)."""
    devices: list[VirtualDevice] = []
    number = 0
    while len(devices) < count:
        number += 1
        kit = models[: count - len(devices)]
        devices += build_home(number, kit, prefix=prefix)
    return devices


def registry_csv(devices: Iterable[VirtualDevice]) -> str:
    """The fleet as `anxin devices import` reads it: one elder per home (names made up)."""
    out = io.StringIO()
    columns = [
        "device_id", "model", "elder_id", "elder_name", "community", "categories", "room",
        "zigbee_name",
    ]  # fmt: skip
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for device in devices:
        home = device.home
        writer.writerow(
            {
                "device_id": device.device_id,
                "model": device.model.name,
                "elder_id": home.elder_id,
                "elder_name": f"模拟长者{home.number:05d}",
                "community": home.community or "",
                "categories": ";".join(home.categories),
                "room": device.room,
                "zigbee_name": device.zigbee_name or "",
            }
        )
    return out.getvalue()


def device_stream(
    plan: DevicePlan, seed: int, origin: datetime, end: datetime, zone: tzinfo
) -> Iterator[Emission]:
    """The device's traffic in [origin, end), in time order, hour by hour (lazily)."""
    device = plan.device
    pending: list[tuple[datetime, int, Emission]] = []
    order = 0  # keeps emissions of the same moment in the order they were made
    extra = sorted(plan.extra, key=lambda e: e.at)
    taken = 0
    hour = origin
    while hour < end or pending:
        until = min(hour + HOUR, end)
        if hour < end:
            made = routine(seed, device.device_id, device.model, origin, hour, until, zone)
            while taken < len(extra) and extra[taken].at < until:
                made.append(extra[taken])
                taken += 1
            for emission in made:
                shaped = _shaped(plan, emission, seed, origin, zone)
                if shaped is not None:
                    heapq.heappush(pending, (shaped.at, order, shaped))
                    order += 1
        else:
            until = max(at for at, _, _ in pending) + timedelta(microseconds=1)
        while pending and pending[0][0] < until:
            yield heapq.heappop(pending)[2]
        hour = until


def _shaped(
    plan: DevicePlan, emission: Emission, seed: int, origin: datetime, zone: tzinfo
) -> Emission | None:
    """The emission as the scenario lets it out: held back, delayed, or with its readings."""
    if emission.event_type in ACTIVITY_EVENTS and any(w.holds(emission.at) for w in plan.quiet):
        return None
    at = emission.at
    if not emission.by_broker:
        for silence in plan.silences:
            if silence.holds(at):
                if silence.cause != "broker" or emission.qos == 0:
                    return None
                at = silence.end  # kept by the device while the broker is away, sent then
    body: dict[str, Any] = dict(emission.body)
    device = plan.device
    if emission.kind in (Uplink.HEARTBEAT, Uplink.EVENT, Uplink.SOS):
        level = _battery(plan, seed, origin, at, zone)
        if level is not None:
            body["battery"] = level
    if emission.kind is Uplink.HEARTBEAT:
        body["rssi"] = rssi_of(seed, device.device_id, at)
    if emission.kind is Uplink.TELEMETRY and "temperature_c" in body.get("metrics", {}):
        for window, value in plan.temperatures:
            if window.holds(at):
                body["metrics"] = {**body["metrics"], "temperature_c": value}
    return Emission(
        at=at,
        device_id=emission.device_id,
        kind=emission.kind,
        body=body,
        qos=emission.qos,
        retain=emission.retain,
        by_broker=emission.by_broker,
    )


def _battery(
    plan: DevicePlan, seed: int, origin: datetime, at: datetime, zone: tzinfo
) -> float | None:
    forced = [level for since, level in plan.batteries if since <= at]
    if forced and plan.device.model.battery is not None:
        return forced[-1]
    return battery_level(seed, plan.device.device_id, plan.device.model, origin, at, zone)


def fleet_stream(
    plans: Sequence[DevicePlan], seed: int, origin: datetime, end: datetime, zone: tzinfo
) -> Iterator[Emission]:
    """Every device's traffic merged into one stream in time order."""
    streams = [device_stream(plan, seed, origin, end, zone) for plan in plans]
    return heapq.merge(*streams, key=lambda emission: emission.at)


class Encoder:
    """Emissions to MQTT messages: contract §1 (``ts``, ``seq``), or Zigbee2MQTT's state and
    availability for a device with a friendly name."""

    def __init__(
        self,
        prefix: str,
        devices: Iterable[VirtualDevice] = (),
        zigbee_base: str = DEFAULT_BASE_TOPIC,
    ) -> None:
        self._prefix, self._zigbee_base = prefix, zigbee_base
        self._seq: dict[str, int] = {}
        self._zigbee = {d.device_id: d for d in devices if d.zigbee_name}
        self._states: dict[str, ZigbeeState] = {}

    def encode(self, emission: Emission, ts: datetime) -> tuple[str, bytes] | None:
        """Topic and payload; None for what the device's protocol cannot say."""
        zigbee = self._zigbee.get(emission.device_id)
        if zigbee is not None:
            return self._zigbee_message(zigbee, emission, ts)
        topic = uplink_topic(emission.device_id, emission.kind, self._prefix)
        if emission.kind is Uplink.STATUS:
            return topic, str(emission.body.get("status", "online")).encode()
        seq = self._seq.get(emission.device_id, 0) + 1
        self._seq[emission.device_id] = seq
        body = {"ts": ts.isoformat(timespec="milliseconds"), "seq": seq, **emission.body}
        return topic, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def status(self, device: VirtualDevice, online: bool) -> tuple[str, bytes]:
        """The device's availability topic and payload (its last will when offline)."""
        if device.zigbee_name:
            return f"{self._zigbee_base}/{device.zigbee_name}/availability", availability(online)
        topic = uplink_topic(device.device_id, Uplink.STATUS, self._prefix)
        return topic, b"online" if online else b"offline"

    def _zigbee_message(
        self, device: VirtualDevice, emission: Emission, ts: datetime
    ) -> tuple[str, bytes] | None:
        if emission.kind is Uplink.STATUS:
            return self.status(device, emission.body.get("status") == "online")
        state = self._states.setdefault(device.device_id, ZigbeeState(device.model.name))
        payload = state.payload(emission, ts)
        if payload is None:
            return None
        return f"{self._zigbee_base}/{device.zigbee_name}", payload
