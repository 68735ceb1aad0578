"""Measure link supervision at fleet sizes (not part of `make test`: a minute or two a size).

    .venv/bin/python scripts/measure_supervision.py [--sizes 10000,30000,100000]
        [--heartbeats 1000] [--passes 24] [--no-detection]

For each size, a SQLite file with that many active fall detectors (heartbeat every 300 s,
offline after 900 s), and the scheduler of `anxin serve` (alerting/scheduler.py) over it:

- cost: passes 5 s apart in virtual time, each after ``--heartbeats`` sightings written as the
  pipeline writes them (``record_sightings``); the CPU of ``Scheduler.step`` divided by the
  heartbeats, in µs. The heartbeat rate is the same at every size, so a pass that reads the
  whole fleet shows as a cost per heartbeat growing with the fleet.
- detection: ``Scheduler.run`` on the wall clock, the fleet reporting, one device heard once
  (a 10 s window); how long after its deadline its ``device_offline`` is raised.

Run it with the venv of the checkout to measure (its anxin is the one imported).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert

from alerting.engine import RulesEngine
from alerting.platform import beat
from alerting.scheduler import Scheduler
from alerting.store import AlertChange
from anxin.database import open_database, upgrade
from anxin.settings import load_settings
from devices.catalogue import apply_overrides
from devices.registry import DeviceRow, Sighting, record_sightings
from simulators.virtual_clock import VirtualClock

MODEL = "fall-detector"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
PASS = timedelta(seconds=5)


def fleet(sessions: Any, size: int, now: datetime, heartbeat_s: int) -> list[str]:
    """``size`` devices, each last heard within its heartbeat before ``now``."""
    ids = [f"sv-{n:06d}" for n in range(size)]
    table: Table = DeviceRow.__table__  # type: ignore[assignment]
    rows = [
        {
            "id": device_id,
            "model": MODEL,
            "status": "active",
            "created_at": now - timedelta(days=1),
            "last_seen_at": now - timedelta(seconds=n * heartbeat_s / size),
            "online": True,
        }
        for n, device_id in enumerate(ids)
    ]
    with sessions.begin() as session:
        for start in range(0, size, 10_000):
            session.execute(insert(table), rows[start : start + 10_000])
    return ids


def cost(size: int, heartbeats: int, passes: int, folder: Path) -> dict[str, float]:
    settings = load_settings()
    engine, sessions = open_database(f"sqlite:///{folder / f'cost-{size}.db'}")
    upgrade(engine)
    model = settings.catalogue[MODEL]
    ids = fleet(sessions, size, T0, model.heartbeat_s)
    clock = VirtualClock(T0)
    scheduler = Scheduler(
        sessions=sessions,
        engine=RulesEngine(settings.rules, settings.catalogue),
        catalogue=settings.catalogue,
        clock=clock,
    )
    started = time.process_time()
    scheduler.step()  # the first pass reads the whole registry, once
    first_s = time.process_time() - started
    step_s = write_s = 0.0
    now, cursor = T0, 0
    for _ in range(passes):
        now += PASS
        clock.advance_to(now)
        heard = [ids[(cursor + k) % size] for k in range(heartbeats)]
        cursor += heartbeats
        started = time.process_time()
        with sessions.begin() as session:
            beat(session, now)  # ingest's pulse: the outage guard sees a listening platform
            record_sightings(session, [Sighting(device_id=d, seen_at=now) for d in heard])
        write_s += time.process_time() - started
        started = time.process_time()
        changes = scheduler.step()
        step_s += time.process_time() - started
        if changes:
            raise RuntimeError(f"nobody is silent yet: {changes[:3]}")
    engine.dispose()
    total = heartbeats * passes
    return {
        "first_pass_ms": 1000 * first_s,
        "step_us_per_heartbeat": 1e6 * step_s / total,
        "step_ms_per_pass": 1000 * step_s / passes,
        "write_us_per_heartbeat": 1e6 * write_s / total,
    }


def detection(size: int, folder: Path) -> dict[str, float]:
    """Seconds from the late device's deadline to its ``device_offline``, on the wall clock:
    the fleet's registry read by a first pass (a start's cost, not counted), then one pendant
    (10 s window here) heard once while the fleet keeps reporting, 200 sightings a second."""
    settings = load_settings()
    catalogue = apply_overrides(
        {"sos-pendant": {"heartbeat_s": 10, "offline_after_missed": 1}}, settings.catalogue
    )
    engine, sessions = open_database(f"sqlite:///{folder / f'detect-{size}.db'}")
    upgrade(engine)
    ids = fleet(sessions, size, datetime.now(UTC), catalogue[MODEL].heartbeat_s)
    late = "sv-late"
    with sessions.begin() as session:
        session.add(DeviceRow(id=late, model="sos-pendant", created_at=datetime.now(UTC)))
        beat(session, datetime.now(UTC))
    scheduler = Scheduler(
        sessions=sessions,
        engine=RulesEngine(settings.rules, catalogue),
        catalogue=catalogue,
        clock=lambda: datetime.now(UTC),
    )
    scheduler.step()  # the whole registry, once
    heard = datetime.now(UTC)
    with sessions.begin() as session:
        beat(session, heard)
        record_sightings(session, [Sighting(device_id=late, seen_at=heard)])
    deadline = heard + timedelta(seconds=catalogue["sos-pendant"].offline_after_s)
    stop = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []
    found: dict[str, datetime] = {}
    step = scheduler.step

    def watched_step() -> list[AlertChange]:
        changes = step()
        for change in changes:
            if change.device_id == late:
                found[late] = datetime.now(UTC)
                loops[0].call_soon_threadsafe(stop.set)  # a thread of its own
        return changes

    scheduler.step = watched_step  # type: ignore[method-assign]

    def reporting(cursor: int) -> None:
        now = datetime.now(UTC)
        with sessions.begin() as session:
            beat(session, now)  # ingest's pulse
            batch = [ids[(cursor + k) % size] for k in range(100)]
            record_sightings(session, [Sighting(device_id=d, seen_at=now) for d in batch])

    async def fleet_reports() -> None:
        cursor = 0
        while not stop.is_set():
            await asyncio.to_thread(reporting, cursor)
            cursor += 100
            await asyncio.sleep(0.5)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        loop.call_later(60, stop.set)
        await asyncio.gather(scheduler.run(stop), fleet_reports())

    asyncio.run(run())
    engine.dispose()
    if late not in found:
        return {"detected_after_deadline_s": float("nan")}
    return {"detected_after_deadline_s": (found[late] - deadline).total_seconds()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--heartbeats", type=int, default=1000, help="sightings per 5 s pass")
    parser.add_argument("--passes", type=int, default=24)
    parser.add_argument("--no-detection", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anxin-supervision-") as name:
        folder = Path(name)
        for size in (int(s) for s in args.sizes.split(",")):
            figures = cost(size, args.heartbeats, args.passes, folder)
            if not args.no_detection:
                figures |= detection(size, folder)
            shown = ", ".join(f"{k} {v:.3g}" for k, v in figures.items())
            print(f"{size:>7,} devices: {shown}", flush=True)


if __name__ == "__main__":
    main()
