"""Measured, not asserted: the telemetry writer's throughput against a real influxd 1.6.

Run with `make bench` (or `pytest -m bench -s tests/bench/test_telemetry_throughput.py`).
In the same run and on fresh databases of the same influxd:

- baseline: the same points, encoded beforehand into bodies of the same batch size, POSTed
  one after the other by a bare httpx client: what influxd takes on this machine;
- anxin: TelemetryWriter with its flusher thread, from ``submit`` of the points (as ingest
  hands them over) until influxd has accepted the last batch; encoding included;
- encoding alone, for the share of the cost that is anxin's own.

Each is run three times, alternating, and the median printed with the load average: on a shared
machine single runs vary by half.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingest import metrics
from ingest.telemetry.points import Point, encode_batch
from ingest.telemetry.sink_v1 import InfluxV1
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import DEFAULT_BATCH_SIZE, TelemetryWriter
from tests.support.influx import InfluxServer, running_influxd
from tests.support.service import wait_until

POINTS = 200_000
DEVICES = 10_000
T0 = 1_767_225_600_000
RUNS = 3


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    with running_influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server


def fleet_points() -> list[Point]:
    """Heartbeats of a fleet of 10 000 devices in 100 communities, every device every 20 s."""
    points = []
    for i in range(POINTS):
        device = i % DEVICES
        tags = {
            "community": f"张家口市/张北县/花园街道/幸福社区{device % 100}",
            "device_id": f"pendant-{device:05d}",
            "model": "sos-pendant",
        }
        fields = {"seen": 1, "battery": float(100 - device % 60), "rssi": -60.0 - device % 30}
        points.append(Point("heartbeat", tags, fields, T0 + (i // DEVICES) * 20_000 + device))
    return points


def _count(influxd: InfluxServer, database: str) -> int:
    series = influxd.query(database, "SELECT count(seen) FROM heartbeat")
    return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]


def baseline(influxd: InfluxServer, points: list[Point], batch_size: int, run: int) -> float:
    database = f"bench_baseline_{batch_size}_{run}"
    influxd.create_database(database)
    bodies = []
    for start in range(0, len(points), batch_size):
        encoded = encode_batch(points[start : start + batch_size])
        assert encoded is not None
        bodies.append(encoded.body)
    with httpx.Client(base_url=influxd.url, timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(
                "/write", params={"db": database, "precision": "ms"}, content=body
            )
            assert response.status_code == 204, response.text
        elapsed = time.perf_counter() - started
    assert _count(influxd, database) == len(points)
    return len(points) / elapsed


def anxin_writer(
    influxd: InfluxServer, points: list[Point], batch_size: int, run: int, folder: Path
) -> float:
    database = f"bench_anxin_{batch_size}_{run}"
    influxd.create_database(database)
    written_before = metrics.TELEMETRY_POINTS_WRITTEN._value.get()
    writer = TelemetryWriter(
        InfluxV1(influxd.url, database, timeout_s=60),
        Spool(folder / f"spool-{batch_size}-{run}", 1 << 30),
        batch_size=batch_size,
        buffer_points=len(points),
    )
    writer.start()
    try:
        started = time.perf_counter()
        # As ingest hands them over: a committed batch of up to 1000 messages at a time.
        for start in range(0, len(points), 1000):
            writer.submit(points[start : start + 1000])
        target = written_before + len(points)
        wait_until(
            lambda: metrics.TELEMETRY_POINTS_WRITTEN._value.get() >= target or None,
            within_s=300,
        )
        elapsed = time.perf_counter() - started
    finally:
        writer.stop()
    assert writer.spool.points == 0
    assert _count(influxd, database) == len(points)
    return len(points) / elapsed


@pytest.mark.bench
def test_telemetry_writer_throughput(influxd: InfluxServer, tmp_path: Path) -> None:
    points = fleet_points()
    started = time.perf_counter()
    for start in range(0, len(points), DEFAULT_BATCH_SIZE):
        encode_batch(points[start : start + DEFAULT_BATCH_SIZE])
    encoding = len(points) / (time.perf_counter() - started)
    print(f"\n{POINTS} heartbeat points of {DEVICES} devices; influxd 1.6 on loopback")
    print(f"line protocol encoding alone: {encoding:,.0f} points/s")
    print(f"median of {RUNS} runs, baseline and anxin alternating; load average {_load()}")
    print(f"{'batch size':>10} {'baseline httpx POST':>22} {'anxin writer':>16} {'ratio':>7}")
    for batch_size in (1000, DEFAULT_BATCH_SIZE, 10_000):
        bare, ours = [], []
        for run in range(RUNS):
            bare.append(baseline(influxd, points, batch_size, run))
            ours.append(anxin_writer(influxd, points, batch_size, run, tmp_path))
        b, o = statistics.median(bare), statistics.median(ours)
        default = " (default)" if batch_size == DEFAULT_BATCH_SIZE else ""
        print(f"{batch_size:>10} {b:>16,.0f} pts/s {o:>10,.0f} pts/s {o / b:>7.2f}{default}")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
