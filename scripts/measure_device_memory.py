"""Measure anxin's memory per device (not part of `make test`: a minute or two a size).

    .venv/bin/python scripts/measure_device_memory.py [--sizes 50000,100000]

For each size, in a fresh process: a SQLite file with that many registered devices (fall
detectors, pendants, door contacts in turn, one elder to five devices), then `anxin serve`'s
ingest pipeline and scheduler built as serve builds them; every device's heartbeat stored
through ``IngestPipeline.store`` (batches of 1,000, twice: the throttles' second look), and two
scheduler passes (the registry read, then one after). The growth of the process's resident
memory (VmRSS) from before the first message to the end, divided by the devices: the state
anxin keeps per device (caches, throttles, link supervision, the welfare watch), plus the
allocator's overhead on it.

Run it with the venv of the checkout to measure (its anxin is the one imported).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

MODELS = ("fall-detector", "sos-pendant", "door-contact")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def one_size(size: int, folder: Path) -> dict[str, float]:
    from sqlalchemy import Table, insert

    from alerting.engine import RulesEngine
    from alerting.platform import beat
    from alerting.scheduler import Scheduler
    from anxin.database import open_database, upgrade
    from anxin.service import message_decoder
    from anxin.settings import load_settings
    from devices.elders import ElderRow
    from devices.registry import DeviceRow
    from ingest.mqtt import Delivery
    from ingest.pipeline import IngestPipeline
    from simulators.virtual_clock import VirtualClock

    settings = load_settings()
    engine, sessions = open_database(f"sqlite:///{folder / f'memory-{size}.db'}")
    upgrade(engine)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    ids = [f"mem-{n:06d}-{MODELS[n % len(MODELS)]}" for n in range(size)]
    elders: Table = ElderRow.__table__  # type: ignore[assignment]
    devices: Table = DeviceRow.__table__  # type: ignore[assignment]
    with sessions.begin() as session:
        session.execute(
            insert(elders),
            [
                {"id": e + 1, "name": f"长者{e}", "created_at": start, "updated_at": start}
                for e in range(size // 5 + 1)
            ],
        )
        for first in range(0, size, 10_000):
            session.execute(
                insert(devices),
                [
                    {
                        "id": ids[n],
                        "model": MODELS[n % len(MODELS)],
                        "elder_id": n // 5 + 1,
                        "status": "active",
                        "created_at": start - timedelta(days=1),
                    }
                    for n in range(first, min(size, first + 10_000))
                ],
            )
    clock = VirtualClock(start)
    rules = RulesEngine(settings.rules, settings.catalogue)
    pipeline = IngestPipeline(
        sessions=sessions, decoder=message_decoder(settings), engine=rules, clock=clock
    )
    scheduler = Scheduler(
        sessions=sessions, engine=rules, catalogue=settings.catalogue, clock=clock
    )
    gc.collect()
    before = rss_bytes()
    now, mid = start, 0
    for round_ in range(2):
        for first in range(0, size, 1000):
            now += timedelta(milliseconds=50)
            clock.advance_to(now)
            batch = []
            for device_id in ids[first : first + 1000]:
                mid += 1
                ts = int(now.timestamp() * 1000)
                payload = {"seq": round_, "battery": 90, "rssi": -60, "ts": ts}
                batch.append(
                    Delivery(
                        topic=f"{settings.mqtt_topic_prefix}/{device_id}/heartbeat",
                        payload=json.dumps(payload).encode(),
                        qos=1,
                        retain=False,
                        mid=mid % 65535 + 1,
                        connection=1,
                        received_at=now,
                    )
                )
            pipeline.store(batch)
        now += timedelta(seconds=10)
        clock.advance_to(now)
        with sessions.begin() as session:
            beat(session, now)
        scheduler.step()
    gc.collect()
    after = rss_bytes()
    engine.dispose()
    return {
        "devices": size,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "bytes_per_device": (after - before) / size,
        "supervised": len(scheduler.supervisor),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,100000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, Path(args.folder))))
        return
    with tempfile.TemporaryDirectory(prefix="anxin-memory-") as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            # A fresh process a size: memory a run has taken is not given back to the system.
            out = subprocess.run(  # noqa: S603
                [sys.executable, __file__, "--one", str(size), "--folder", folder],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            print(
                f"{size:>7,} devices: RSS {figures['rss_before_mib']:.1f} → "
                f"{figures['rss_after_mib']:.1f} MiB, "
                f"{figures['bytes_per_device']:,.0f} bytes a device "
                f"({figures['supervised']:,} supervised)",
                flush=True,
            )


if __name__ == "__main__":
    main()
