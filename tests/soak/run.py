"""The soak: ``anxin serve`` (SQLite, InfluxDB v1) under a steady load for a set time.

Everything is real and on loopback, in a temporary folder: Mosquitto configured like
deploy/mosquitto.conf where it matters (simulators/bench_broker.py), Debian's influxd
(tests/support/influx.py), and ``anxin serve`` as a subprocess, as an operator runs it. The
devices are registered first (each with an elder), so every device is known from the first
message: after the first minute nothing more should be kept in memory.

The load comes from ``simulators.bench_publisher`` in its own process (a few µs a message, so
the two cores go to the broker and anxin): QoS 1 heartbeats at ``rate`` a second, round-robin
over the devices, and an SOS (QoS 1) every ``sos_interval_s``, each from another device.

Each ``sample_s`` it prints anxin's RSS (``/proc/PID/status``), the inbox depth
(``anxin_ingest_inbox_messages``), how many messages were published and not yet stored, the
mean batch time over the interval (``anxin_ingest_batch_seconds``), the SOS-to-Ack times of the
interval (publication by the device to the Ack it receives, the promise of the SOS path), the
load average (the machine is shared), and where the ingest process's native memory is
(anxin/native_memory.py, ANXIN_DEBUG_MALLOC_METRICS on): SQLite's heap and its page caches,
glibc malloc's in use (SQLite's included) and kept free, and its RSS of files (code,
libraries). At the end, once everything is drained, it checks that every SOS is an alert in
the database and every heartbeat a point in InfluxDB, and prints the growth of RSS over the
second half of the run.

The same soak for the other roles (``target``), each process's RSS sampled and its growth
printed:

- ``watch``: ``anxin gateway watch`` with watches over TCP (tests/soak/gateway_load.py: LK
  heartbeats, an AL with the SOS bit every ``sos_interval_s``, its AL reply the Ack), and
  ``anxin serve`` behind it storing what the gateway publishes;
- ``dc09``: ``anxin gateway dc09`` with hubs over TCP (NULL polls, a Contact ID 101 SOS), and
  ``anxin serve`` behind it;
- ``members``: ``members`` ``anxin ingest`` processes on PostgreSQL sharing the messages
  (``ANXIN_MQTT_SHARED_GROUP``), under the paced publisher.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from anxin.database import open_database, upgrade
from devices.elders import ElderRow
from devices.registry import register_device
from simulators.bench_broker import BenchBroker, running_broker
from simulators.bench_publisher import PublisherPlan
from simulators.delayed_broker import DelayedBroker
from tests.soak.gateway_load import GatewayLoadPlan
from tests.support.influx import InfluxServer, running_influxd
from tests.support.ports import free_port, wait_for_port
from tests.support.postgres import PostgresServer, running_postgres
from tests.support.service import ANXIN, AnxinEnv, anxin_env, running_anxin, running_role

PREFIX = "anxin/v1"
Target = Literal["serve", "watch", "dc09", "members"]
TARGETS: tuple[Target, ...] = ("serve", "watch", "dc09", "members")
# Each target's devices: model and id (watch ids are digits; a DC-09 account is hex).
DEVICE_MODELS = {"serve": "sos-pendant", "watch": "watch-4g", "dc09": "dc09-panel"}
DEVICE_MODELS["members"] = DEVICE_MODEL = DEVICE_MODELS["serve"]
INFLUX_DB = "anxin_soak"
COMMUNITY = "张家口市/张北县/花园街道/幸福社区"
# Starting a process on a shared, loaded machine may take a while (imports alone: > 30 s seen).
READY_WITHIN_S = 180.0
MIB = 1024 * 1024
SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, kw_only=True)
class SoakOptions:
    minutes: float = 60.0
    devices: int = 2000
    rate: float = 2000.0  # heartbeats a second, in all
    sos_interval_s: float = 10.0
    sample_s: float = 60.0
    # How long the end may take to store and write what is still on its way.
    drain_s: float = 180.0
    # Fail when RSS grew by more than this over the second half (None: only report it).
    max_growth_pct: float | None = 5.0
    # More environment for `anxin serve` (e.g. ANXIN_DEBUG_TRACEMALLOC_FRAMES).
    anxin_env: Mapping[str, str] = field(default_factory=dict)
    # Keep the folder (the database, the logs) in this place instead of a temporary one.
    folder: Path | None = None
    # What runs under the load (see the module's docstring), and how many ingest members.
    target: Target = "serve"
    members: int = 3
    # A gateway's broker slow to answer (simulators/delayed_broker.py): its PUBACKs and Acks
    # this much later, as on a busy machine; 0 for none. Gateway targets only.
    broker_delay_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Sample:
    minute: float
    rss_mib: float
    inbox: int
    published: int
    stored: int
    batch_ms: float | None
    sos_ack_ms_max: float | None
    sos_acks: int
    load1: float
    heap: int = 0  # link supervision's heap entries (anxin_supervision_heap_entries)
    # The ingest processes' native memory (anxin/native_memory.py), MiB: SQLite's heap, and
    # glibc malloc's in use (SQLite's included) and kept free.
    sqlite_mib: float = 0.0
    page_cache_mib: float = 0.0  # of SQLite's heap, its page caches
    malloc_mib: float = 0.0
    malloc_free_mib: float = 0.0
    # The first ingest process's RSS of files (code, libraries, mapped files), MiB: RSS less
    # this is anonymous memory (malloc's, pymalloc's arenas, the threads' stacks).
    file_mib: float = 0.0
    # Every measured process's RSS, by name, when there is more than one (``rss_mib``: the
    # first, the role under test).
    rss: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        batch = f"{self.batch_ms:6.2f}" if self.batch_ms is not None else "     -"
        ack = f"{self.sos_ack_ms_max:7.1f}" if self.sos_ack_ms_max is not None else "      -"
        return (
            f"{self.minute:6.1f} {self.rss_mib:8.1f} {self.inbox:6d} {self.published:10d}"
            f" {self.published - self.stored:7d} {batch} {ack} {self.sos_acks:4d}"
            f" {self.load1:5.2f} {self.heap:7d}"
            f" {self.sqlite_mib:6.1f} {self.page_cache_mib:5.1f} {self.malloc_mib:6.1f}"
            f" {self.malloc_free_mib:5.1f} {self.file_mib:5.1f}"
            + "".join(f" {mib:9.1f}" for mib in list(self.rss.values())[1:])
        )


HEADER = (
    "minute  RSS MiB  inbox  published  behind batch_ms ack_max acks load1    heap"
    " sqlite cache malloc  free  file"
)


def header(names: Sequence[str]) -> str:
    """The columns; RSS is the first process's, the others' follow (in MiB)."""
    return f"{HEADER}" + "".join(f" {name[-9:]:>9}" for name in names[1:])


@dataclass(kw_only=True)
class SoakResult:
    options: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)  # while the load runs
    after_drain: Sample | None = None
    heartbeats_published: int = 0
    heartbeats_skipped: int = 0  # DC-09 polls due while the hub was still busy (not sent)
    heartbeats_stored: int = 0
    heartbeat_points: int = 0
    sos_sent: int = 0
    sos_alerts: int = 0
    sos_missing: list[str] = field(default_factory=list)
    sos_ack_ms: list[float] = field(default_factory=list)
    growth_second_half_pct: float | None = None
    growth_by_process_pct: dict[str, float | None] = field(default_factory=dict)
    publisher_cpu_s: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def growth_over_second_half(samples: Sequence[Sample]) -> float | None:
    """RSS at the end against RSS at the middle of the run, in percent."""
    if len(samples) < 3:
        return None
    end = samples[-1]
    middle = min(samples, key=lambda s: abs(s.minute - end.minute / 2))
    return round((end.rss_mib - middle.rss_mib) / middle.rss_mib * 100, 2)


def growth_of(samples: Sequence[Sample], name: str) -> float | None:
    """``growth_over_second_half`` of one of the measured processes."""
    return growth_over_second_half(
        [
            Sample(**{**asdict(s), "rss_mib": s.rss[name], "rss": {}})
            for s in samples
            if name in s.rss
        ]
    )


def p99(values: Sequence[float]) -> float:
    """The 99th percentile, within the values (never beyond the largest)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """A figure of ``/proc/PID/status`` in MiB: VmRSS, or its part RssAnon, RssFile."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


@dataclass(frozen=True, kw_only=True)
class Metrics:
    inbox: int
    heartbeats: int
    batch_sum_s: float
    batch_count: int
    heap: int = 0
    sqlite_bytes: float = 0.0
    page_cache_bytes: float = 0.0
    malloc_bytes: float = 0.0
    malloc_free_bytes: float = 0.0


def scrape(api_url: str) -> Metrics:
    text = httpx.get(f"{api_url}/metrics", timeout=30).text
    inbox = heartbeats = batch_count = heap = 0
    batch_sum = sqlite = page_cache = malloc = malloc_free = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "anxin_ingest_inbox_messages":
                inbox = int(sample.value)
            elif sample.name == "anxin_messages_total" and sample.labels.get("kind") == "heartbeat":
                heartbeats = int(sample.value)
            elif sample.name == "anxin_ingest_batch_seconds_sum":
                batch_sum = sample.value
            elif sample.name == "anxin_ingest_batch_seconds_count":
                batch_count = int(sample.value)
            elif sample.name == "anxin_supervision_heap_entries":
                heap = int(sample.value)
            elif sample.name == "anxin_sqlite_memory_bytes":
                sqlite = sample.value
            elif sample.name == "anxin_sqlite_page_cache_bytes":
                page_cache = sample.value
            elif sample.name == "anxin_malloc_bytes" and sample.labels.get("state") == "in_use":
                malloc = sample.value
            elif sample.name == "anxin_malloc_bytes" and sample.labels.get("state") == "free":
                malloc_free = sample.value
    return Metrics(
        inbox=inbox,
        heartbeats=heartbeats,
        batch_sum_s=batch_sum,
        batch_count=batch_count,
        heap=heap,
        sqlite_bytes=sqlite,
        page_cache_bytes=page_cache,
        malloc_bytes=malloc,
        malloc_free_bytes=malloc_free,
    )


def scrape_all(urls: Sequence[str]) -> Metrics:
    """The ingest processes' figures together (one ``serve``, or the members)."""
    each = [scrape(url) for url in urls]
    return Metrics(
        inbox=sum(m.inbox for m in each),
        heartbeats=sum(m.heartbeats for m in each),
        batch_sum_s=sum(m.batch_sum_s for m in each),
        batch_count=sum(m.batch_count for m in each),
        heap=max((m.heap for m in each), default=0),
        sqlite_bytes=sum(m.sqlite_bytes for m in each),
        page_cache_bytes=sum(m.page_cache_bytes for m in each),
        malloc_bytes=sum(m.malloc_bytes for m in each),
        malloc_free_bytes=sum(m.malloc_free_bytes for m in each),
    )


class PublisherRun:
    """A load process (``python -m MODULE PLAN_JSON``: simulators.bench_publisher in paced
    mode, or tests.soak.gateway_load), its progress read on a thread."""

    def __init__(self, module: str, plan_json: str) -> None:
        self.published = 0
        self.ack_ms: list[float] = []
        self.report: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, plan_json],
            cwd=SOURCE_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read, name="soak-publisher", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            message = json.loads(raw)
            with self._lock:
                self.published = message.get("published", self.published)
                self.ack_ms += message.get("ack_ms", [])
                if message.get("done"):
                    self.report = message

    def acks_since(self, start: int) -> list[float]:
        with self._lock:
            return self.ack_ms[start:]

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # end of standard input stops it
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)


def device_ids(options: SoakOptions) -> list[str]:
    if options.target == "watch":
        return [f"88{n:08d}" for n in range(options.devices)]
    if options.target == "dc09":
        return [f"{n + 0x1000:X}" for n in range(options.devices)]  # accounts: 3–16 hex digits
    return [f"soak-{n:05d}" for n in range(options.devices)]


def register(setup: AnxinEnv, devices: Sequence[str], model: str) -> None:
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    with sessions.begin() as session:
        for number, device_id in enumerate(devices, start=1):
            session.add(ElderRow(id=number, name=f"老人{number}", community=COMMUNITY))
            session.flush()
            register_device(session, device_id, model, elder_id=number)
    engine.dispose()


def sos_alerts(database_url: str) -> set[str]:
    engine, _ = open_database(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT device_id FROM alerts WHERE type = 'sos'"))
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def heartbeat_points(influxd: InfluxServer) -> int:
    series = influxd.query(INFLUX_DB, "SELECT count(seen) FROM heartbeat")
    if not series:
        return 0
    values = series[0]["values"]
    assert isinstance(values, list)
    return int(values[0][1])


def wait_for(check: Callable[[], bool], within_s: float, every_s: float = 1.0) -> bool:
    deadline = time.monotonic() + within_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


@contextlib.contextmanager
def _folder(options: SoakOptions) -> Iterator[Path]:
    if options.folder is not None:
        options.folder.mkdir(parents=True, exist_ok=True)
        yield options.folder
        return
    with tempfile.TemporaryDirectory(prefix="anxin-soak-") as name:
        yield Path(name)


@dataclass(frozen=True, kw_only=True)
class Measured:
    """A process whose RSS is sampled; ``ingest``: its /metrics count what is stored."""

    name: str
    pid: int
    api_url: str
    ingest: bool


def run_soak(options: SoakOptions, out: Callable[[str], None] = print) -> SoakResult:
    if options.target not in TARGETS:
        raise ValueError(f"target: one of {', '.join(TARGETS)}")
    result = SoakResult(options={**asdict(options), "folder": str(options.folder)})
    devices = device_ids(options)
    members = options.target == "members"
    with _folder(options) as folder, _services(folder, members) as (broker, influxd, postgres):
        database = {}
        if postgres is not None:
            database["ANXIN_DATABASE_URL"] = postgres.url_for(postgres.create_database("soak"))
        setup = anxin_env(
            folder / "anxin",
            ANXIN_MQTT_URL=broker.url,
            ANXIN_MQTT_CLIENT_ID="anxin-soak",
            ANXIN_INFLUX_URL=influxd.url,
            ANXIN_INFLUX_DB=INFLUX_DB,
            ANXIN_DEBUG_MALLOC_METRICS="1",  # where the native memory goes, beside RSS
            **database,
            **options.anxin_env,
        )
        # As setup.cli does, with a longer wait (a loaded machine: more than 60 s seen).
        upgraded = subprocess.run(
            [ANXIN, "db", "upgrade"],
            env=dict(setup.env),
            cwd=setup.folder,
            capture_output=True,
            text=True,
            timeout=READY_WITHIN_S,
            check=False,
        )
        if upgraded.returncode != 0:
            raise RuntimeError(f"anxin db upgrade failed: {upgraded.stderr}")
        register(setup, devices, DEVICE_MODELS[options.target])
        out(
            f"soak of {options.target}: {options.devices:,} devices,"
            f" {options.rate:,.0f} heartbeats/s, an SOS every {options.sos_interval_s:g} s,"
            f" {options.minutes:g} min; folder {folder}"
        )
        with _roles(options, setup) as (measured, address):
            sampler = Sampler(measured, out)
            _load(options, address, sampler, devices, result, out)
            _check(options, setup, sampler, influxd, result, out)
            # Once drained: what is kept, with nothing on its way.
            result.after_drain = sampler.sample(None, result.heartbeats_published)
    result.growth_second_half_pct = growth_over_second_half(result.samples)
    if len(measured) > 1:
        result.growth_by_process_pct = {m.name: growth_of(result.samples, m.name) for m in measured}
    else:
        result.growth_by_process_pct = {measured[0].name: result.growth_second_half_pct}
    for name, growth in result.growth_by_process_pct.items():
        out(f"RSS growth over the second half ({name}): {growth if growth is not None else '-'} %")
        if (
            growth is not None
            and options.max_growth_pct is not None
            and growth >= options.max_growth_pct
        ):
            result.failures.append(f"RSS of {name} grew by {growth} % over the second half")
    for failure in result.failures:
        out(f"FAILED: {failure}")
    return result


@contextlib.contextmanager
def _services(
    folder: Path, postgres: bool
) -> Iterator[tuple[BenchBroker, InfluxServer, PostgresServer | None]]:
    (folder / "mosquitto").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(running_broker(folder / "mosquitto"))
        influxd = stack.enter_context(running_influxd(folder / "influxd"))
        database = stack.enter_context(running_postgres()) if postgres else None
        yield broker, influxd, database


@contextlib.contextmanager
def _roles(
    options: SoakOptions, setup: AnxinEnv
) -> Iterator[tuple[list[Measured], tuple[str, int]]]:
    """The processes under test, the one under load first; and where the load goes (the
    broker, or the gateway's port)."""
    broker = setup.env["ANXIN_MQTT_URL"].rsplit("/", 1)[-1].rsplit(":", 1)
    with contextlib.ExitStack() as stack:
        if options.target == "members":
            measured = []
            for number in range(1, options.members + 1):
                port = free_port()
                name = f"ingest-{number}"
                env = {
                    "ANXIN_API_PORT": str(port),
                    "ANXIN_MQTT_CLIENT_ID": f"anxin.soak-{number}",
                    "ANXIN_MQTT_SHARED_GROUP": "anxin",
                }
                process = stack.enter_context(
                    running_role(setup, "ingest", env=env, ready_within_s=READY_WITHIN_S)
                )
                measured.append(
                    Measured(name=name, pid=process.pid, api_url=_url(port), ingest=True)
                )
            yield measured, (broker[0], int(broker[1]))
            return
        serve = stack.enter_context(running_anxin(setup, ready_within_s=READY_WITHIN_S))
        serving = Measured(name="serve", pid=serve.pid, api_url=setup.api_url, ingest=True)
        if options.target == "serve":
            yield [serving], (broker[0], int(broker[1]))
            return
        listen, health = free_port(), free_port()
        env = {"ANXIN_API_PORT": str(health)}
        broker_url = setup.env["ANXIN_MQTT_URL"]
        if options.broker_delay_ms > 0:
            delayed = DelayedBroker(broker[0], int(broker[1]), options.broker_delay_ms / 1000)
            broker_url = f"mqtt://127.0.0.1:{delayed.port}"
        if options.target == "watch":
            env |= {
                "ANXIN_WATCH_LISTEN": f"127.0.0.1:{listen}",
                "ANXIN_WATCH_MQTT_URL": broker_url,
            }
        else:
            env |= {
                "ANXIN_DC09_LISTEN": f"127.0.0.1:{listen}",
                "ANXIN_DC09_MQTT_URL": broker_url,
            }
        gateway = stack.enter_context(
            running_role(setup, "gateway", options.target, env=env, ready_within_s=READY_WITHIN_S)
        )
        wait_for_port(listen)
        name = f"gateway-{options.target}"
        under_load = Measured(name=name, pid=gateway.pid, api_url=_url(health), ingest=False)
        yield [under_load, serving], ("127.0.0.1", listen)


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


class Sampler:
    """One line of figures each time it is asked, the batch time and the Acks since the last."""

    def __init__(self, measured: Sequence[Measured], out: Callable[[str], None]) -> None:
        self.measured, self.out = list(measured), out
        self.ingest_urls = [m.api_url for m in measured if m.ingest]
        self.ingest_pid = next(m.pid for m in measured if m.ingest)
        self.started = time.monotonic()
        self.previous: Metrics | None = None
        self.acks_seen = 0

    def stored(self) -> int:
        return scrape_all(self.ingest_urls).heartbeats

    def sample(self, publisher: PublisherRun | None, published: int = 0) -> Sample:
        try:
            metrics = scrape_all(self.ingest_urls)
        except httpx.HTTPError as error:  # a busy process: the line says so, the soak goes on
            self.out(f"(no metrics: {type(error).__name__})")
            metrics = self.previous or Metrics(inbox=-1, heartbeats=0, batch_sum_s=0, batch_count=0)
        batch_ms = None
        previous, self.previous = self.previous, metrics
        if previous is not None and metrics.batch_count > previous.batch_count:
            batch_ms = (
                (metrics.batch_sum_s - previous.batch_sum_s)
                / (metrics.batch_count - previous.batch_count)
                * 1000
            )
        acks: list[float] = []
        if publisher is not None:
            acks = publisher.acks_since(self.acks_seen)
            self.acks_seen += len(acks)
            published = publisher.published
        rss = {m.name: round(rss_mib(m.pid), 1) for m in self.measured}
        sample = Sample(
            minute=round((time.monotonic() - self.started) / 60, 2),
            rss_mib=rss[self.measured[0].name],
            inbox=metrics.inbox,
            published=published,
            stored=metrics.heartbeats,
            batch_ms=round(batch_ms, 3) if batch_ms is not None else None,
            sos_ack_ms_max=max(acks) if acks else None,
            sos_acks=len(acks),
            load1=os.getloadavg()[0],
            heap=metrics.heap,
            sqlite_mib=round(metrics.sqlite_bytes / MIB, 1),
            page_cache_mib=round(metrics.page_cache_bytes / MIB, 1),
            malloc_mib=round(metrics.malloc_bytes / MIB, 1),
            malloc_free_mib=round(metrics.malloc_free_bytes / MIB, 1),
            file_mib=round(rss_mib(self.ingest_pid, "RssFile"), 1),
            rss=rss if len(rss) > 1 else {},
        )
        self.out(sample.line())
        return sample


def _load(
    options: SoakOptions,
    address: tuple[str, int],
    sampler: Sampler,
    devices: Sequence[str],
    result: SoakResult,
    out: Callable[[str], None],
) -> None:
    module, plan_json = "simulators.bench_publisher", ""
    if options.target in ("watch", "dc09"):
        module = "tests.soak.gateway_load"
        plan_json = GatewayLoadPlan(
            kind="watch" if options.target == "watch" else "dc09",
            host=address[0],
            port=address[1],
            devices=list(devices),
            duration_s=options.minutes * 60,
            rate=options.rate,
            sos_interval_s=options.sos_interval_s,
        ).to_json()
    else:
        plan_json = PublisherPlan(
            host=address[0],
            port=address[1],
            prefix=PREFIX,
            devices=list(devices),
            mode="paced",
            duration_s=options.minutes * 60,
            qos=1,
            rate=options.rate,
            sos_interval_s=options.sos_interval_s,
            client_id="anxin-soak-publisher",
        ).to_json()
    out(header([m.name for m in sampler.measured]))
    result.samples.append(sampler.sample(None))
    publisher = PublisherRun(module, plan_json)
    try:
        next_sample = time.monotonic() + options.sample_s
        while publisher.running():
            time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
            if time.monotonic() >= next_sample and publisher.running():
                result.samples.append(sampler.sample(publisher))
                next_sample += options.sample_s
    finally:
        publisher.stop()
    report = publisher.report
    if report is None:
        raise RuntimeError("the load ended without its report")
    if report.get("error"):
        result.failures.append(f"the load stopped: {report['error']}")
    if report.get("errors"):
        result.failures.append(f"the gateway refused: {report['errors']}")
    result.heartbeats_published = int(report["published"])
    result.heartbeats_skipped = int(report.get("skipped", 0))
    result.sos_sent = len(report["sos"])
    result.sos_ack_ms = list(publisher.ack_ms)
    result.publisher_cpu_s = report.get("cpu_s")
    result.options["sos_devices"] = sorted({device for device, _ in report["sos"]})


def _check(
    options: SoakOptions,
    setup: AnxinEnv,
    sampler: Sampler,
    influxd: InfluxServer,
    result: SoakResult,
    out: Callable[[str], None],
) -> None:
    published = result.heartbeats_published

    def stored() -> bool:
        result.heartbeats_stored = sampler.stored()
        return result.heartbeats_stored >= published

    def written() -> bool:
        result.heartbeat_points = heartbeat_points(influxd)
        return result.heartbeat_points >= published

    drained = wait_for(stored, options.drain_s)
    # Counted even when not all was stored in time (once, then), so the line says how many.
    drained = wait_for(written, options.drain_s if drained else 0, 2.0) and drained
    sos_devices: list[str] = result.options.pop("sos_devices")
    alerted = sos_alerts(setup.env["ANXIN_DATABASE_URL"])
    result.sos_alerts = len(alerted & set(sos_devices))
    result.sos_missing = sorted(set(sos_devices) - alerted)
    out(
        f"heartbeats: {published:,} published, {result.heartbeats_stored:,} stored,"
        f" {result.heartbeat_points:,} points in InfluxDB"
        f"{'' if drained else ' (not all drained in time)'}"
        + (f"; {result.heartbeats_skipped:,} polls skipped" if result.heartbeats_skipped else "")
    )
    acks = result.sos_ack_ms
    out(
        f"SOS: {result.sos_sent} sent, {result.sos_alerts} alerts, {len(acks)} Acks"
        + (
            f" (SOS to Ack: median {statistics.median(acks):.1f} ms,"
            f" p99 {p99(acks):.1f} ms,"
            f" max {max(acks):.1f} ms)"
            if acks
            else ""
        )
    )
    if result.heartbeats_stored != published:
        result.failures.append(f"{published - result.heartbeats_stored} heartbeats not stored")
    if result.heartbeat_points != published:
        result.failures.append(
            f"{published - result.heartbeat_points} heartbeats not points in InfluxDB"
        )
    if result.sos_missing or result.sos_alerts != result.sos_sent:
        result.failures.append(f"SOS without an alert: {result.sos_missing}")
    if len(acks) != result.sos_sent:
        result.failures.append(f"{result.sos_sent - len(acks)} SOS without an Ack")
