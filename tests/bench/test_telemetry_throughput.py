"""Measured, not asserted: the telemetry writer's throughput against two real servers.

Run with `make bench` (or `pytest -m bench -s tests/bench/test_telemetry_throughput.py`); with
``ANXIN_BENCH_BASE=main`` (a git ref) the writer and encoder of that commit run too, alternating
with this one's. In the same run, on fresh databases of Debian's influxd 1.6 (configured as an
operator would: ``simulators/bench_influx.py``) and of Debian's VictoriaMetrics (which takes the
same ``/write``, faster: the writer's own ceiling shows there):

- bare: the same points, encoded beforehand into bodies of the same batch size, POSTed by bare
  httpx clients, one after the other (1 client), from two threads at once (2 clients), or
  gzipped beforehand (gzip): what the server takes on this machine;
- anxin: TelemetryWriter with its threads, from ``submit`` of the points (as ingest hands them
  over) until the server has accepted the last batch; encoding included;
- encoding alone, for the share of the cost that is anxin's own.

Each is run three times, alternating, and the median printed with the load average: on a shared
machine single runs vary by half.
"""

from __future__ import annotations

import gzip
import os
import statistics
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest import metrics
from ingest.telemetry.points import Point, encode_batch
from ingest.telemetry.sink_v1 import InfluxV1
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import DEFAULT_BATCH_SIZE, TelemetryWriter
from tests.support.influx import running_influxd, running_victoria_metrics
from tests.support.service import wait_until

POINTS = 200_000
DEVICES = 10_000
RUNS = 3
BATCH_SIZES = (1000, DEFAULT_BATCH_SIZE, 10_000)
BASE = os.environ.get("ANXIN_BENCH_BASE")


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    create: Callable[[str], None]
    count: Callable[[str], int]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    with (
        running_influxd(tmp_path_factory.mktemp("influxd")) as influxd,
        running_victoria_metrics(tmp_path_factory.mktemp("vm")) as vm,
    ):

        def influx_count(database: str) -> int:
            series = influxd.query(database, "SELECT count(seen) FROM heartbeat")
            return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]

        def vm_count(database: str) -> int:
            # The database is a label, ``db``, of every series VictoriaMetrics makes.
            found = vm.export(f'{{__name__="heartbeat_seen",db="{database}"}}')
            return sum(len(series["values"]) for series in found)  # type: ignore[arg-type,misc]

        yield [
            Server("influxd 1.6", influxd.url, influxd.create_database, influx_count),
            # It makes a database when first written to.
            Server("victoria-metrics", vm.url, lambda database: None, vm_count),
        ]


def fleet_points() -> list[Point]:
    """Heartbeats of a fleet of 10 000 devices in 100 communities, every device every 20 s,
    in the last hour (VictoriaMetrics keeps a month)."""
    t0 = (int(time.time()) - 3600) * 1000
    points = []
    for i in range(POINTS):
        device = i % DEVICES
        tags = {
            "community": f"张家口市/张北县/花园街道/幸福社区{device % 100}",
            "device_id": f"pendant-{device:05d}",
            "model": "sos-pendant",
        }
        fields = {"seen": 1, "battery": float(100 - device % 60), "rssi": -60.0 - device % 30}
        points.append(Point("heartbeat", tags, fields, t0 + (i // DEVICES) * 20_000 + device))
    return points


def bodies_of(points: list[Point], batch_size: int) -> list[bytes]:
    bodies = []
    for start in range(0, len(points), batch_size):
        encoded = encode_batch(points[start : start + batch_size])
        assert encoded is not None
        bodies.append(encoded.body)
    return bodies


def bare(
    server: Server, bodies: list[bytes], database: str, *, clients: int, zipped: bool
) -> float:
    server.create(database)
    headers = {"Content-Encoding": "gzip"} if zipped else {}
    if zipped:
        bodies = [gzip.compress(body, compresslevel=1) for body in bodies]
    queue = iter(bodies)
    lock = threading.Lock()

    def post_all() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while True:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                response = client.post(
                    "/write",
                    params={"db": database, "precision": "ms"},
                    content=body,
                    headers=headers,
                )
                assert response.status_code == 204, response.text

    threads = [threading.Thread(target=post_all) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert server.count(database) == POINTS
    return POINTS / elapsed


def writer_rate(
    writer_class: Any,
    server: Server,
    points: list[Point],
    batch_size: int,
    database: str,
    folder: Path,
) -> float:
    server.create(database)
    written_before = metrics.TELEMETRY_POINTS_WRITTEN._value.get()
    writer = writer_class(
        InfluxV1(server.url, database, timeout_s=60),
        Spool(folder / database, 1 << 30),
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
    assert server.count(database) == len(points)
    return len(points) / elapsed


def base_modules(ref: str) -> tuple[types.ModuleType, types.ModuleType]:
    """The encoder and the writer of commit ``ref``, loaded beside this one's."""
    modules = []
    for name in ("points", "writer"):
        source = subprocess.run(
            ["git", "show", f"{ref}:ingest/telemetry/{name}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        source = source.replace(
            "from ingest.telemetry.points import", "from bench_base_points import"
        )
        module = types.ModuleType(f"bench_base_{name}")
        sys.modules[module.__name__] = module  # dataclasses look their module up
        exec(compile(source, f"{ref}:{name}.py", "exec"), module.__dict__)  # noqa: S102
        modules.append(module)
    return modules[0], modules[1]


def encoding_rate(encode: Callable[[list[Point]], object], points: list[Point]) -> float:
    started = time.process_time()
    for start in range(0, len(points), DEFAULT_BATCH_SIZE):
        encode(points[start : start + DEFAULT_BATCH_SIZE])
    return len(points) / (time.process_time() - started)


@pytest.mark.bench
def test_telemetry_writer_throughput(servers: list[Server], tmp_path: Path) -> None:
    points = fleet_points()
    writers: dict[str, Any] = {"anxin": TelemetryWriter}
    encoders: dict[str, Callable[[list[Point]], object]] = {"anxin": encode_batch}
    if BASE:
        base_points, base_writer = base_modules(BASE)
        writers = {BASE: base_writer.TelemetryWriter, **writers}
        encoders = {BASE: base_points.encode_batch, **encoders}
    print(f"\n{POINTS} heartbeat points of {DEVICES} devices on loopback; load {_load()}")
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(2 * RUNS):
        for name, encode in encoders.items():
            rates[name].append(encoding_rate(encode, points))
    for name, found in rates.items():
        rate = statistics.median(found)
        print(f"encoding alone ({name}): {rate:,.0f} points/s of CPU, {1e6 / rate:.2f} µs a point")
    print(f"median of {RUNS} runs, alternating; pts/s")
    columns = ["bare 1", "bare 2", "bare gzip", *writers]
    print(f"{'server':>16} {'batch':>6}" + "".join(f"{c:>12}" for c in columns) + "  anxin/bare 1")
    for server in servers:
        for batch_size in BATCH_SIZES:
            bodies = bodies_of(points, batch_size)
            found = {c: [] for c in columns}
            for run in range(RUNS):
                tag = f"{batch_size}_{run}"
                found["bare 1"].append(bare(server, bodies, f"b1_{tag}", clients=1, zipped=False))
                for name, writer_class in writers.items():
                    database = f"w_{name}_{tag}".replace("/", "_")
                    rate = writer_rate(writer_class, server, points, batch_size, database, tmp_path)
                    found[name].append(rate)
                if batch_size == DEFAULT_BATCH_SIZE:  # the other ways of the bare client
                    found["bare 2"].append(
                        bare(server, bodies, f"b2_{tag}", clients=2, zipped=False)
                    )
                    found["bare gzip"].append(
                        bare(server, bodies, f"bz_{tag}", clients=1, zipped=True)
                    )
            median = {c: statistics.median(v) if v else None for c, v in found.items()}
            cells = "".join(f"{m:>12,.0f}" if m else f"{'':>12}" for m in median.values())
            ratio = median["anxin"] / median["bare 1"]  # type: ignore[operator]
            print(f"{server.name:>16} {batch_size:>6}{cells}  {ratio:>6.2f}")
    print(f"load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
