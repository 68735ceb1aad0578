"""Measured, not asserted: the telemetry writer's throughput against two real servers.

Run with `make bench` (or `pytest -m bench -s tests/bench/test_telemetry_throughput.py`); with
``ANXIN_BENCH_BASE=main`` (a git ref) the writer and encoder of that commit run too, alternating
with this one's. In the same run, against Debian's influxd 1.6 (configured as an operator would:
``simulators/bench_influx.py``) and Debian's VictoriaMetrics (which takes the same ``/write``
for less CPU: the writer's own ceiling shows there):

- bare: the same points, encoded beforehand into bodies of the same batch size, POSTed by bare
  httpx clients, one after the other (1 client), from two threads at once (2 clients), or
  gzipped beforehand (gzip): what the server takes on this machine;
- anxin: TelemetryWriter with its threads, from ``submit`` of the points (as ingest hands them
  over) until the server has accepted the last batch; encoding included;
- encoding alone, for the share of the cost that is anxin's own.

Each run writes the fleet's next 400 s into one database whose series exist already (a fleet
beats on; creating 30 000 series costs the servers more than the points do), and is counted
back. Each is run three times, alternating, and the median printed with the CPU a point took
in this process and in the server (from /proc: what load from others does not change much) and
the load average: on a shared machine single runs vary by half.
"""

from __future__ import annotations

import gzip
import itertools
import json
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
WINDOW_MS = 20 * 20_000  # every device beats 20 times in a run, every 20 s
RUNS = 3
BATCH_SIZES = (1000, DEFAULT_BATCH_SIZE, 10_000)
BASE = os.environ.get("ANXIN_BENCH_BASE")
DATABASE = "bench"
# VictoriaMetrics keeps a month: the windows start a day ago, one after the other.
_windows = itertools.count((int(time.time()) - 86_400) * 1000, WINDOW_MS)


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    pid: int
    # Points of heartbeat.seen between two times (ms, end excluded).
    count: Callable[[int, int], int]

    def cpu_s(self) -> float:
        """The CPU time the server has used, all its threads."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    """Points a second, and CPU µs a point in this process and in the server."""

    rate: float
    client_us: float
    server_us: float


class Stopwatch:
    def __init__(self, server: Server) -> None:
        self._server = server
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._server_cpu = server.cpu_s()

    def run(self) -> Run:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        server_cpu = self._server.cpu_s() - self._server_cpu
        return Run(POINTS / wall, cpu / POINTS * 1e6, server_cpu / POINTS * 1e6)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    with (
        running_influxd(tmp_path_factory.mktemp("influxd")) as influxd,
        running_victoria_metrics(tmp_path_factory.mktemp("vm")) as vm,
    ):
        influxd.create_database(DATABASE)

        def influx_count(start: int, end: int) -> int:
            series = influxd.query(
                DATABASE,
                "SELECT count(seen) FROM heartbeat"  # noqa: S608 - numbers of ours
                f" WHERE time >= {start}ms AND time < {end}ms",
            )
            return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]

        def vm_count(start: int, end: int) -> int:
            httpx.get(f"{vm.url}/internal/force_flush").raise_for_status()
            response = httpx.post(
                f"{vm.url}/api/v1/export",
                # The database is a label, ``db``, of every series VictoriaMetrics makes.
                data={
                    "match[]": f'{{__name__="heartbeat_seen",db="{DATABASE}"}}',
                    "start": str(start / 1000),
                    "end": str((end - 1) / 1000),
                },
                timeout=60,
            )
            response.raise_for_status()
            lines = response.text.splitlines()
            return sum(len(json.loads(line)["values"]) for line in lines if line)

        found = [
            Server("influxd 1.6", influxd.url, _pid(influxd.process), influx_count),
            Server("victoria-metrics", vm.url, _pid(vm.process), vm_count),
        ]
        for server in found:  # every series made once, before anything is timed
            start = next(_windows)
            bare(server, bodies_of(fleet_points(start), DEFAULT_BATCH_SIZE), start, clients=1)
        yield found


def _pid(process: subprocess.Popen[bytes] | None) -> int:
    assert process is not None
    return process.pid


def fleet_points(t0: int) -> list[Point]:
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
    server: Server, bodies: list[bytes], t0: int, *, clients: int, zipped: bool = False
) -> Run:
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
                    params={"db": DATABASE, "precision": "ms"},
                    content=body,
                    headers=headers,
                )
                assert response.status_code == 204, response.text

    threads = [threading.Thread(target=post_all) for _ in range(clients)]
    stopwatch = Stopwatch(server)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run = stopwatch.run()
    counted(server, t0)
    return run


def writer_run(writer_class: Any, server: Server, batch_size: int, t0: int, folder: Path) -> Run:
    points = fleet_points(t0)
    written_before = metrics.TELEMETRY_POINTS_WRITTEN._value.get()
    writer = writer_class(
        InfluxV1(server.url, DATABASE, timeout_s=60),
        Spool(folder / f"spool-{t0}", 1 << 30),
        batch_size=batch_size,
        buffer_points=len(points),
    )
    writer.start()
    try:
        stopwatch = Stopwatch(server)
        # As ingest hands them over: a committed batch of up to 1000 messages at a time.
        for start in range(0, len(points), 1000):
            writer.submit(points[start : start + 1000])
        target = written_before + len(points)
        wait_until(
            lambda: metrics.TELEMETRY_POINTS_WRITTEN._value.get() >= target or None,
            within_s=300,
        )
        run = stopwatch.run()
    finally:
        writer.stop()
    assert writer.spool.points == 0
    counted(server, t0)
    return run


def counted(server: Server, t0: int) -> None:
    """Every point of the window is there, once: VictoriaMetrics makes rows searchable a moment
    after it answered their write."""
    wait_until(lambda: server.count(t0, t0 + WINDOW_MS) == POINTS or None, within_s=30)
    assert server.count(t0, t0 + WINDOW_MS) == POINTS


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
    writers: dict[str, Any] = {"anxin": TelemetryWriter}
    encoders: dict[str, Callable[[list[Point]], object]] = {"anxin": encode_batch}
    if BASE:
        base_points, base_writer = base_modules(BASE)
        writers = {BASE: base_writer.TelemetryWriter, **writers}
        encoders = {BASE: base_points.encode_batch, **encoders}
    print(f"\n{POINTS} heartbeat points of {DEVICES} devices on loopback; load {_load()}")
    points = fleet_points(0)
    rates: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(2 * RUNS):
        for name, encode in encoders.items():
            rates[name].append(encoding_rate(encode, points))
    for name, found in rates.items():
        rate = statistics.median(found)
        print(f"encoding alone ({name}): {rate:,.0f} points/s of CPU, {1e6 / rate:.2f} µs a point")
    print(f"median of {RUNS} runs, alternating: points/s, CPU µs a point of client/server")
    columns = ["bare 1", "bare 2", "bare gzip", *writers]
    print(f"{'server':>16} {'batch':>6}" + "".join(f"{c:>22}" for c in columns) + "  anxin/bare 1")
    for server in servers:
        for batch_size in BATCH_SIZES:
            found: dict[str, list[Run]] = {c: [] for c in columns}
            for _ in range(RUNS):
                t0 = next(_windows)
                bodies = bodies_of(fleet_points(t0), batch_size)
                found["bare 1"].append(bare(server, bodies, t0, clients=1))
                for name, writer_class in writers.items():
                    t0 = next(_windows)
                    found[name].append(writer_run(writer_class, server, batch_size, t0, tmp_path))
                if batch_size == DEFAULT_BATCH_SIZE:  # the other ways of the bare client
                    t0 = next(_windows)
                    bodies = bodies_of(fleet_points(t0), batch_size)
                    found["bare 2"].append(bare(server, bodies, t0, clients=2))
                    t0 = next(_windows)
                    bodies = bodies_of(fleet_points(t0), batch_size)
                    found["bare gzip"].append(bare(server, bodies, t0, clients=1, zipped=True))
            cells = "".join(_cell(runs) for runs in found.values())
            ratio = _median(found["anxin"]).rate / _median(found["bare 1"]).rate
            print(f"{server.name:>16} {batch_size:>6}{cells}  {ratio:>6.2f}")
    print(f"load average after: {_load()}")


def _median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.rate for r in runs),
        statistics.median(r.client_us for r in runs),
        statistics.median(r.server_us for r in runs),
    )


def _cell(runs: list[Run]) -> str:
    if not runs:
        return " " * 22
    m = _median(runs)
    return f"{m.rate:>10,.0f} {m.client_us:>5.1f}/{m.server_us:<5.1f}"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
