"""Live, the fleet's DC-09 hubs report to a receiver (`anxin simulate --dc09 HOST:PORT`).

Each hub (a device of a scenario group with ``protocol: dc09``, or any ``dc09-panel`` with
``--dc09``) says what it would have published over MQTT as a DC-09 frame: a heartbeat is a
NULL poll, an SOS Contact ID 101, an event its Contact ID code (a restore: qualifier 3). Each
frame is resent until ACKed (simulators/dc09_hub.py). Its DC-09 account is its device id
without the characters an account cannot hold (the last 16 letters and digits):
:func:`accounts_toml` writes the receiver's accounts file that maps it back.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from devices.topics import Uplink
from gateways.dc09.crypto import KeyEncoding
from simulators.behaviours import Emission
from simulators.dc09_hub import CID_OF_EVENT, HubClient, HubFrames
from simulators.virtual_devices import VirtualDevice

MAX_IN_FLIGHT = 500  # frames being delivered at once, across the fleet


@dataclass(frozen=True, kw_only=True, slots=True)
class Dc09Target:
    host: str
    port: int
    transport: str = "tcp"
    key: str | None = None
    key_encoding: KeyEncoding = KeyEncoding.TEXT


def account_of(device_id: str) -> str:
    """``sim-00017-dc09-panel`` → ``m00017dc09panel``… the last 16 letters and digits."""
    return re.sub(r"[^0-9A-Za-z]", "", device_id)[-16:]


def reports_over_dc09(device: VirtualDevice, every_panel: bool) -> bool:
    return device.dc09 or (every_panel and device.model.name == "dc09-panel")


def accounts_toml(devices: Iterable[VirtualDevice], target: Dc09Target) -> str:
    """The receiver's accounts file (``ANXIN_DC09_ACCOUNTS``) for these hubs."""
    lines = ["# Written by `anxin simulate --dc09-accounts`: the simulated hubs.", ""]
    for device in devices:
        lines.append(f'[accounts."{account_of(device.device_id)}"]')
        lines.append(f'device_id = "{device.device_id}"')
        if target.key is not None:
            lines.append(f'key = "{target.key}"')
            lines.append(f'key_encoding = "{target.key_encoding.value}"')
        lines.append("")
    return "\n".join(lines)


@dataclass
class Dc09Counts:
    sent: int = 0
    replies: Counter[str] = field(default_factory=Counter)  # ACK, DUH, NAK, none
    resends: int = 0
    unsaid: int = 0  # emissions a hub has no frame for


class Dc09Reporter:
    """Turns a hub's emissions into frames and delivers each in a task of its own."""

    def __init__(self, devices: Iterable[VirtualDevice], target: Dc09Target) -> None:
        self.target = target
        self.hubs = {
            d.device_id: HubFrames(
                account=account_of(d.device_id), key=target.key, key_encoding=target.key_encoding
            )
            for d in devices
        }
        self.counts = Dc09Counts()
        self._clients: dict[str, HubClient] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        # A panel waits for the reply before it sends its next frame.
        self._turns = {device_id: asyncio.Lock() for device_id in self.hubs}

    def handles(self, device_id: str) -> bool:
        return device_id in self.hubs

    def send(self, emission: Emission, now: datetime) -> None:
        frame = self.frame(emission, now)
        if frame is None:
            self.counts.unsaid += 1
            return
        task = asyncio.create_task(self._deliver(emission.device_id, frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def frame(self, emission: Emission, now: datetime) -> bytes | None:
        hub = self.hubs[emission.device_id]
        if emission.kind is Uplink.HEARTBEAT:
            return hub.null(now)
        if emission.kind is Uplink.SOS:
            return hub.sos(now)
        if emission.kind is Uplink.EVENT:
            code = CID_OF_EVENT.get(emission.event_type or "")
            if code is None:
                return None
            restore = emission.body.get("state") == "restore"
            return hub.contact_id(code, now, restore=restore)
        return None  # status, telemetry: DC-09 has no way to say them

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.close()

    async def _deliver(self, device_id: str, frame: bytes) -> None:
        async with self._turns[device_id], self._slots:
            client = self._clients.get(device_id)
            if client is None:
                target = self.target
                client = HubClient(target.host, target.port, transport=target.transport)
                self._clients[device_id] = client
            self.counts.sent += 1
            delivery = await client.deliver(frame)
            self.counts.replies[delivery.reply or "none"] += 1
            self.counts.resends += delivery.attempts - 1
