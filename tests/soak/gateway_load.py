"""The soak's load on a gateway: 4G watches over TCP, or DC-09 hubs (``python -m
tests.soak.gateway_load PLAN_JSON``), in its own process like simulators/bench_publisher.py.

- ``watch``: each watch keeps one TCP connection to ``anxin gateway watch``; ``LK`` heartbeats
  at ``rate`` a second in all, round-robin over the watches, and every ``sos_interval_s`` an
  ``AL`` with the SOS bit from another watch; the gateway's ``AL`` reply (sent once the alert is
  stored) is its Ack.
- ``dc09``: each hub keeps one TCP connection to ``anxin gateway dc09``; ``NULL`` polls (a
  heartbeat each) at ``rate`` a second in all, and every ``sos_interval_s`` a Contact ID 101
  (SOS) from another hub; its ACK (sent once the alert is stored) is its Ack. A hub sends one
  frame at a time, as a panel does: a poll due while its last frame waits is sent after it.

Standard output carries JSON lines as the publisher's do: ``{"published": n, "ack_ms": […]}``
now and then, and a last line with the totals and the SOS sent. End of standard input (or the
plan's duration) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gateways.watch.frames import Framer, RawFrame, encode_frame
from simulators.dc09_hub import HubClient, HubFrames

PROGRESS_EVERY_S = 0.25
ACK_GRACE_S = 30.0  # after the last SOS, for the Acks still on their way
WATCH_VENDOR = "3G"


@dataclass(frozen=True, kw_only=True)
class GatewayLoadPlan:
    kind: Literal["watch", "dc09"]
    host: str
    port: int
    devices: list[str]  # watch ids, or DC-09 accounts
    duration_s: float
    rate: float  # heartbeats a second, in all
    sos_interval_s: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def watch_heartbeat(steps: int) -> str:
    return f"LK,{steps},0,80"


def watch_sos(now: datetime) -> str:
    """An AL record with the SOS bit (status word 00010000) and a fix, at ``now``."""
    at = now.strftime("%d%m%y,%H%M%S")
    return (
        f"AL,{at},A,40.8,N,114.88,E,0.00,154.8,0.0,11,100,80,0,0,00010000,7,0,460,1,"
        "9529,21809,155,9529,21242,132,0,12.4"
    )


class Load:
    def __init__(self, plan: GatewayLoadPlan) -> None:
        self.plan = plan
        self.published = 0
        self.skipped = 0  # heartbeats due and not sent (a hub still busy with its last)
        self.sos: list[tuple[str, float]] = []  # device, time sent (time.monotonic)
        self.sos_sent_at: dict[str, float] = {}
        self.acked: set[str] = set()
        self.ack_ms: deque[float] = deque()
        self.errors: list[str] = []
        self.stop = asyncio.Event()
        self.all_acked = asyncio.Event()

    def acknowledged(self, device: str) -> None:
        sent = self.sos_sent_at.get(device)
        if sent is not None and device not in self.acked:
            self.acked.add(device)
            self.ack_ms.append(round((time.monotonic() - sent) * 1000, 2))
            if len(self.acked) == len(self.sos):
                self.all_acked.set()

    async def run(self) -> None:
        senders = await (self._watches() if self.plan.kind == "watch" else self._hubs())
        asyncio.get_running_loop().add_reader(sys.stdin.fileno(), self._stdin)
        progress = asyncio.create_task(self._progress())
        devices, n = self.plan.devices, len(self.plan.devices)
        started = time.monotonic()
        next_sos = started + self.plan.sos_interval_s
        sos_index = 0
        sent = 0
        while not self.stop.is_set() and time.monotonic() - started < self.plan.duration_s:
            due = int((time.monotonic() - started) * self.plan.rate)
            for _ in range(min(due - sent, 5000)):
                senders.heartbeat(devices[sent % n])
                sent += 1
            if self.plan.sos_interval_s > 0 and time.monotonic() >= next_sos and sos_index < n:
                # Each SOS from another device, from the far end of the list (a heartbeat's
                # device too, as a real one is).
                device = devices[n - 1 - sos_index]
                sos_index += 1
                next_sos += self.plan.sos_interval_s
                self.sos.append((device, time.monotonic()))
                self.sos_sent_at[device] = time.monotonic()
                senders.sos(device)
            await asyncio.sleep(0.01)
        await senders.drain()
        if len(self.acked) < len(self.sos):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_acked.wait(), ACK_GRACE_S)
        self.stop.set()
        await progress
        await senders.close()

    def _stdin(self) -> None:
        if not os.read(sys.stdin.fileno(), 65536):
            asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
            self.stop.set()

    async def _progress(self) -> None:
        while not self.stop.is_set():
            line: dict[str, Any] = {"published": self.published}
            if self.ack_ms:
                line["ack_ms"] = [self.ack_ms.popleft() for _ in range(len(self.ack_ms))]
            emit(line)
            await asyncio.sleep(PROGRESS_EVERY_S)
        if self.ack_ms:
            emit({"published": self.published, "ack_ms": list(self.ack_ms)})

    async def _watches(self) -> _Watches:
        watches = _Watches(self)
        for device in self.plan.devices:
            await watches.connect(device)
        return watches

    async def _hubs(self) -> _Hubs:
        return _Hubs(self)

    def report(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "done": True,
            "published": self.published,
            "sos": [[device, at] for device, at in self.sos],
            "acks": len(self.acked),
            "skipped": self.skipped,
            "errors": self.errors[:20],
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }


class _Watches:
    """One TCP connection per watch; the gateway's replies read on a task each."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.writers: dict[str, asyncio.StreamWriter] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.steps = 0

    async def connect(self, device: str) -> None:
        reader, writer = await asyncio.open_connection(self.load.plan.host, self.load.plan.port)
        self.writers[device] = writer
        self.readers.append(asyncio.create_task(self._read(device, reader)))

    def _send(self, device: str, content: str) -> None:
        writer = self.writers[device]
        if writer.is_closing():
            self.load.errors.append(f"{device}: connection closed")
            return
        writer.write(encode_frame(WATCH_VENDOR, device, content))

    def heartbeat(self, device: str) -> None:
        self.steps += 1
        self._send(device, watch_heartbeat(self.steps))
        self.load.published += 1

    def sos(self, device: str) -> None:
        self._send(device, watch_sos(datetime.now(UTC)))

    async def _read(self, device: str, reader: asyncio.StreamReader) -> None:
        framer = Framer()
        while data := await reader.read(65536):
            for item in framer.feed(data):
                if isinstance(item, RawFrame) and item.data.split(b"*", 3)[-1].startswith(b"AL"):
                    self.load.acknowledged(device)

    async def drain(self) -> None:
        for writer in self.writers.values():
            await writer.drain()

    async def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        for task in self.readers:
            task.cancel()


class _Hubs:
    """One HubClient per hub, one frame at a time each (a queue per hub), each frame made when
    it is sent: two NULL polls of a hub in the same second would be the same bytes, which the
    receiver rightly counts once (a resend), so a hub's polls are a second apart at least.
    A poll due while the hub's last one still waits is skipped (counted), as a panel's timer
    does: polls do not pile up in front of an SOS."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.queues: dict[str, asyncio.Queue[str]] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.polling: set[str] = set()
        for account in load.plan.devices:
            queue: asyncio.Queue[str] = asyncio.Queue()
            self.queues[account] = queue
            client = HubClient(load.plan.host, load.plan.port, reply_timeout_s=30)
            self.tasks.append(asyncio.create_task(self._send(account, client, queue)))

    def heartbeat(self, account: str) -> None:
        if account in self.polling:
            self.load.skipped += 1
            return
        self.polling.add(account)
        self.queues[account].put_nowait("null")

    def sos(self, account: str) -> None:
        self.queues[account].put_nowait("sos")

    async def _send(self, account: str, client: HubClient, queue: asyncio.Queue[str]) -> None:
        frames = HubFrames(account=account)
        last_null = 0
        try:
            while True:
                what = await queue.get()
                if what == "null":
                    if int(time.time()) == last_null:
                        await asyncio.sleep(last_null + 1.001 - time.time())
                    last_null = int(time.time())
                    frame = frames.null(datetime.now(UTC))
                else:
                    frame = frames.sos(datetime.now(UTC))
                delivery = await client.deliver(frame)
                if what == "null":
                    self.polling.discard(account)
                if delivery.reply != "ACK":
                    self.load.errors.append(f"{account} {what}: {delivery.reply}")
                elif what == "sos":
                    self.load.acknowledged(account)
                else:
                    self.load.published += 1
                queue.task_done()
        finally:
            await client.close()

    async def drain(self) -> None:
        for queue in self.queues.values():
            await queue.join()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def main() -> None:
    plan = GatewayLoadPlan(**json.loads(sys.argv[1]))
    load = Load(plan)
    try:
        asyncio.run(load.run())
    except OSError as error:
        emit({**load.report(), "error": f"{type(error).__name__}: {error}"})
        sys.exit(1)
    emit(load.report())


if __name__ == "__main__":
    main()
