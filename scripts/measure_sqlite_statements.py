"""SQLite's heap under serve's ingest pipeline, by Python's statement cache (issue 17).

``python scripts/measure_sqlite_statements.py --cached 128`` (then 16, 0, ...): one process a
figure. ``serve``'s pipeline on SQLite in a temporary folder, 200 registered devices, batches
of heartbeats from a random number (1..``--max-batch``) of random devices, as a loaded ingest
takes them; prints SQLite's heap (``anxin_sqlite_memory_bytes``) and the mean time to store a
batch (and the process's CPU time of it: the commit's fsync is most of the rest).
``--cached`` is ``sqlite3.connect(cached_statements=...)``: how many prepared statements each
connection keeps (Python's default 128).
"""

from __future__ import annotations

import argparse
import functools
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from sqlite3 import dbapi2

from alerting.engine import RulesEngine
from anxin.database import open_database, upgrade
from anxin.native_memory import sqlite_memory_reader
from anxin.service import message_decoder
from anxin.settings import Settings
from devices.elders import ElderRow
from devices.registry import register_device
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cached", type=int, default=128)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--max-batch", type=int, default=200)
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    # SQLAlchemy's pysqlite dialect calls sqlite3.dbapi2.connect: every connection gets it.
    connect = functools.partial(dbapi2.connect, cached_statements=args.cached)
    dbapi2.connect = connect  # type: ignore[assignment]
    read = sqlite_memory_reader()
    if read is None:
        raise SystemExit("SQLite's heap cannot be read in this process")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        settings = Settings(database_url=f"sqlite:///{folder / 'anxin.db'}", var_dir=folder)
        engine, sessions = open_database(settings.database_url)
        upgrade(engine)
        devices = [f"stmt-{n:05d}" for n in range(args.devices)]
        with sessions.begin() as session:
            for number, device_id in enumerate(devices, start=1):
                session.add(ElderRow(id=number, name=f"老人{number}", community="测试社区"))
                session.flush()
                register_device(session, device_id, "sos-pendant", elder_id=number)
        now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
        rules = RulesEngine(settings.rules, settings.catalogue)
        pipeline = IngestPipeline(
            sessions=sessions,
            decoder=message_decoder(settings),
            engine=rules,
            clock=lambda: now,
        )
        chance = random.Random(17)  # noqa: S311  # the same batches each run, not secrets
        mid = 0
        spent = cpu = 0.0
        for _ in range(args.batches):
            now += timedelta(seconds=61)  # past the sighting throttle: every batch writes
            batch = []
            for device in chance.sample(devices, chance.randint(1, args.max_batch)):
                mid = mid % 65535 + 1
                payload = b'{"ts":%d,"battery":80,"rssi":-60}' % int(now.timestamp() * 1000)
                batch.append(
                    Delivery(
                        topic=f"anxin/v1/{device}/heartbeat",
                        payload=payload,
                        qos=1,
                        retain=False,
                        mid=mid,
                        connection=1,
                        received_at=now,
                    )
                )
            started, started_cpu = time.perf_counter(), time.process_time()
            pipeline.store(batch)
            spent += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
        memory = read()
        print(
            f"cached_statements={args.cached}: SQLite heap {memory.used / 2**20:.2f} MiB"
            f" (page caches {memory.page_cache / 2**20:.2f}),"
            f" {spent / args.batches * 1000:.2f} ms a batch ({cpu / args.batches * 1000:.2f} ms"
            f" of CPU), {args.batches} batches"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
