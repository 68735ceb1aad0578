"""Measure ``anxin gateway watch`` under thousands of watches (not part of `make test`).

    .venv/bin/python scripts/measure_watch_gateway.py [--watches 5000] [--interval 60]
        [--duration 180] [--broker-delay-ms 0]

A Mosquitto of its own (simulators/bench_broker.py) on 127.0.0.1, the gateway as a subprocess
(`anxin gateway watch`, its own broker connection), and in this process N watches on one
asyncio loop, each a TCP connection that sends ``LK,steps,0,battery`` every ``--interval``
seconds from a phase of its own and reads the ``LK`` replies (each LK is a heartbeat the
gateway publishes, QoS 1, and answers once the broker PUBACKed it). Once every watch is
connected, it measures for ``--duration`` seconds: the gateway's CPU seconds (from /proc) as a
share of one core, its resident memory at the end (VmRSS) and peak (VmHWM), LKs sent and
answered, the machine's load. Everything stops by itself; the file-descriptor limit is raised
to its hard limit first (each watch is a socket here and one in the gateway).

``--broker-delay-ms`` puts a proxy of ours between the gateway and the broker that delays
every byte from the broker (PUBACKs) by that much: a broker that is slow to answer, as on a
busy machine, where the gateway's throughput is what it keeps in flight over the round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateways.watch.frames import Framer, RawFrame, encode_frame  # noqa: E402
from simulators.bench_broker import (  # noqa: E402
    free_port,
    machine_busy_s,
    process_cpu_s,
    running_broker,
)
from simulators.delayed_broker import DelayedBroker  # noqa: E402

ANXIN = str(Path(sys.executable).parent / "anxin")


class Counts:
    sent = 0
    answered = 0
    connected = 0
    failed = 0


async def watch(
    number: int, port: int, interval: float, stop: asyncio.Event, counts: Counts
) -> None:
    device_id = f"77{number:08d}"
    for _ in range(20):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.5)
    else:
        counts.failed += 1
        return
    counts.connected += 1

    async def replies() -> None:
        framer = Framer()
        while data := await reader.read(4096):
            for item in framer.feed(data):
                if isinstance(item, RawFrame) and item.data.endswith(b"*LK]"):
                    counts.answered += 1

    reading = asyncio.create_task(replies())
    rng = random.Random(number)  # noqa: S311 - a load test
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), rng.uniform(0, interval))
    steps = rng.randint(0, 5000)
    while not stop.is_set():
        steps += rng.randint(0, 50)
        writer.write(encode_frame("3G", device_id, f"LK,{steps},0,{rng.randint(30, 100)}"))
        counts.sent += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    reading.cancel()
    writer.close()


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def connections_gauge(health: int) -> float | None:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{health}/metrics").text
    return next(
        (
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("anxin_watch_connections ")
        ),
        None,
    )


async def measure(
    args: argparse.Namespace, gateway_pid: int, port: int, health: int
) -> dict[str, object]:
    counts = Counts()
    stop = asyncio.Event()
    began = time.monotonic()
    tasks = []
    for number in range(args.watches):
        tasks.append(asyncio.create_task(watch(number, port, args.interval, stop, counts)))
        if number % 200 == 199:
            await asyncio.sleep(0.2)  # connections at up to 1,000 a second
    while counts.connected + counts.failed < args.watches and time.monotonic() - began < 120:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    connect_s = time.monotonic() - began
    cpu0, busy0, t0, sent0, answered0 = (
        process_cpu_s(gateway_pid),
        machine_busy_s(),
        time.monotonic(),
        counts.sent,
        counts.answered,
    )
    await asyncio.sleep(args.duration)
    cpu1, busy1, t1 = process_cpu_s(gateway_pid), machine_busy_s(), time.monotonic()
    memory = rss_kib(gateway_pid)
    gauge = await asyncio.to_thread(connections_gauge, health)
    sent, answered = counts.sent - sent0, counts.answered - answered0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    window = t1 - t0
    return {
        "watches": args.watches,
        "connected": counts.connected,
        "failed": counts.failed,
        "connect_s": round(connect_s, 1),
        "interval_s": args.interval,
        "window_s": round(window, 1),
        "lk_sent": sent,
        "lk_answered": answered,
        "lk_per_s": round(sent / window, 1),
        "gateway_cpu_s": round((cpu1 or 0) - (cpu0 or 0), 2),
        "gateway_cpu_share_of_a_core": round(((cpu1 or 0) - (cpu0 or 0)) / window, 4),
        "gateway_rss_mib": round(memory.get("VmRSS", 0) / 1024, 1),
        "gateway_peak_rss_mib": round(memory.get("VmHWM", 0) / 1024, 1),
        "machine_busy_cores": round(((busy1 or 0) - (busy0 or 0)) / window, 2),
        "load_average": os.getloadavg(),
        "gateway_connections_gauge": gauge,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watches", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--broker-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.watches + 200:
        sys.exit(f"ulimit -n is {hard}: too few descriptors for {args.watches} watches")
    with tempfile.TemporaryDirectory(prefix="anxin-watch-measure-") as folder:
        work = Path(folder)
        with running_broker(work) as broker:
            port, health = free_port(), free_port()
            broker_url = broker.url
            if args.broker_delay_ms > 0:
                delayed = DelayedBroker(broker.host, broker.port, args.broker_delay_ms / 1000)
                broker_url = f"mqtt://127.0.0.1:{delayed.port}"
            env = {
                **os.environ,
                "ANXIN_WATCH_MQTT_URL": broker_url,
                "ANXIN_WATCH_LISTEN": f"127.0.0.1:{port}",
                "ANXIN_API_PORT": str(health),
                "ANXIN_VAR_DIR": str(work),
                "ANXIN_LOG_LEVEL": "warning",
                "ANXIN_LOG_FORMAT": "json",
            }
            log = (work / "gateway.log").open("wb")
            gateway = subprocess.Popen(  # noqa: S603 - our own command
                [ANXIN, "gateway", "watch"], env=env, stdout=log, stderr=log
            )
            try:
                deadline = time.monotonic() + 30
                import httpx

                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"http://127.0.0.1:{health}/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
                figures = asyncio.run(measure(args, gateway.pid, port, health))
            finally:
                gateway.send_signal(signal.SIGINT)
                try:
                    gateway.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    gateway.kill()
                    gateway.wait()
                log.close()
            print(json.dumps({**figures, "broker_delay_ms": args.broker_delay_ms}))


if __name__ == "__main__":
    main()
