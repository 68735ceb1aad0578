"""``python -m tests.soak.inprocess``: what ``serve`` keeps in memory, by traceback, without the
broker and the network: the ingest pipeline and the scheduler as ``serve`` builds them, on a
SQLite database in a temporary folder, driven by a virtual clock under ``tracemalloc``.

The devices (registered first, each with an elder) send a heartbeat every ``--every`` virtual
seconds; the scheduler steps every 5 virtual seconds, as in ``serve``. After ``--warm-up``
virtual minutes it takes a snapshot, then another after ``--minutes`` more, and prints what
grew in between, largest first. Everything is known after the first minute, so what grows
after it is kept for good (or for as long as some window lasts).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerting.engine import RulesEngine
from alerting.scheduler import Scheduler
from anxin.database import open_database, upgrade
from anxin.service import message_decoder
from anxin.settings import Settings
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from tests.soak.run import COMMUNITY, DEVICE_MODEL, PREFIX

STEP_S = 5  # the scheduler's pass, as in serve
BATCH = 200


class VirtualClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.inprocess", description=__doc__)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--every", type=int, default=5, help="virtual seconds between heartbeats")
    parser.add_argument("--warm-up", type=float, default=2, help="virtual minutes")
    parser.add_argument(
        "--minutes", type=float, default=6, help="virtual minutes between the snapshots"
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="anxin-inprocess-") as folder:
        run(args, Path(folder))


def run(args: argparse.Namespace, folder: Path) -> None:
    from devices.elders import ElderRow
    from devices.registry import register_device

    settings = Settings(database_url=f"sqlite:///{folder / 'anxin.db'}", var_dir=folder)
    engine, sessions = open_database(settings.database_url)
    upgrade(engine)
    devices = [f"soak-{n:05d}" for n in range(args.devices)]
    with sessions.begin() as session:
        for number, device_id in enumerate(devices, start=1):
            session.add(ElderRow(id=number, name=f"老人{number}", community=COMMUNITY))
            session.flush()
            register_device(session, device_id, DEVICE_MODEL, elder_id=number)
    clock = VirtualClock()
    rules = RulesEngine(settings.rules, settings.catalogue)
    pipeline = IngestPipeline(
        sessions=sessions, decoder=message_decoder(settings), engine=rules, clock=clock
    )
    scheduler = Scheduler(
        sessions=sessions, engine=rules, catalogue=settings.catalogue, clock=clock
    )
    topics = [f"{PREFIX}/{d}/heartbeat" for d in devices]
    seq = 0
    mid = 0

    def advance(seconds: float) -> int:
        """Heartbeats and scheduler passes for ``seconds`` of virtual time; messages sent."""
        nonlocal seq, mid
        sent = 0
        for _ in range(int(seconds // STEP_S)):
            for second in range(STEP_S):
                clock.now += timedelta(seconds=1)
                ts = int(clock.now.timestamp() * 1000)
                # Each device once every `every` seconds, spread over them.
                due = [i for i in range(len(devices)) if (i + seq) % args.every == 0]
                seq += 1
                batch: list[Delivery] = []
                for index in due:
                    mid = mid % 65535 + 1
                    payload = b'{"ts":%d,"seq":%d,"battery":%d,"rssi":-60}' % (
                        ts,
                        seq,
                        60 + index % 40,
                    )
                    batch.append(
                        Delivery(
                            topic=topics[index],
                            payload=payload,
                            qos=1,
                            retain=False,
                            mid=mid,
                            connection=1,
                            received_at=clock.now,
                        )
                    )
                    if len(batch) == BATCH:
                        pipeline.store(batch)
                        sent += len(batch)
                        batch = []
                if batch:
                    pipeline.store(batch)
                    sent += len(batch)
                del second
            scheduler.step()
        return sent

    tracemalloc.start(args.frames)
    started = time.monotonic()
    warm = advance(args.warm_up * 60)
    gc.collect()
    first = tracemalloc.take_snapshot()
    print(f"warm-up: {warm:,} heartbeats in {args.warm_up:g} virtual min")
    sent = advance(args.minutes * 60)
    gc.collect()
    second = tracemalloc.take_snapshot()
    print(
        f"then {sent:,} heartbeats in {args.minutes:g} virtual min"
        f" ({time.monotonic() - started:.0f} s of real time); heap entries"
        f" {scheduler.supervisor.queued:,}, watched {len(scheduler.supervisor):,}"
    )
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = second.filter_traces(filters).compare_to(first.filter_traces(filters), "traceback")
    total = sum(s.size_diff for s in stats)
    print(
        f"grown between the snapshots: {total / 2**20:.2f} MiB"
        f" ({total / max(sent, 1):.1f} B a heartbeat)"
    )
    for stat in stats[: args.top]:
        print(
            f"\n{stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks"
            f" (now {stat.size / 1024:.1f} KiB)"
        )
        for line in stat.traceback.format()[-2 * args.frames :]:
            print(f"    {line}")
    engine.dispose()


if __name__ == "__main__":
    main()
