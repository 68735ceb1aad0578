"""``anxin bench ingest``: how many heartbeats anxin's ingest path stores per second, next to a
bare aiomqtt subscriber that only decodes JSON, and how fast an SOS is committed meanwhile.

One run, against a Mosquitto of its own (a free loopback port, a temporary folder):

1. **baseline**: an aiomqtt subscriber, the same subscriptions as anxin, ``json.loads`` of each
   payload and nothing else. Counts what it received.
2. **anxin**: anxin's own broker connection, ``IngestService`` and ``IngestPipeline`` (as
   ``anxin ingest`` builds them) into a fresh SQLite database in the temporary folder, with the
   devices registered first. Counts what it committed.
3. **sos**: the same anxin service, heartbeats at ``--rate`` per second, an SOS (QoS 1) every
   ``--sos-interval`` seconds, each from another device: the time from the SOS's publication to
   the commit of its alert, and to the device receiving its Ack.

The heartbeats come from another process (``simulators.bench_publisher``), so that producing
them does not compete with the subscriber for its interpreter lock. In phases 1 and 2 it
publishes for ``--duration`` seconds as fast as the subscriber takes them: it stays a bounded
number of messages ahead of what the subscriber has counted (the bench tells it), so nothing is
dropped and every message published is counted. Throughput is messages counted divided by the
time from the first publication to the last count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from simulators.bench_publisher import PublisherPlan

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from anxin.settings import Settings
    from ingest.mqtt import Delivery, MqttConnection

DEVICE_MODEL = "sos-pendant"
# How long a phase may take to count its last messages once the publisher is done.
DRAIN_S = 30.0
# The bench tells the publisher what was counted this often.
FEED_EVERY_S = 0.02
# At most this many messages a second in a flood, whatever the duration: bounds every run.
FLOOD_CAP_PER_S = 200_000
# Where `python -m simulators.bench_publisher` finds the package, installed or not.
SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    duration_s: float = 10.0
    rate: float = 2000.0
    devices: int = 1000
    protocol: Literal["5", "3.1.1"] | None = None  # None: as configured (ANXIN_MQTT_PROTOCOL)
    # aiomqtt's own default, the cheaper of the two for paho underneath.
    baseline_protocol: Literal["5", "3.1.1"] = "3.1.1"
    qos: int = 0
    messages: int | None = None
    sos_interval_s: float = 0.1
    window: int = 20_000
    baseline: bool = True


@dataclass(kw_only=True)
class PhaseResult:
    name: str
    published: int = 0
    counted: int = 0
    seconds: float = 0.0
    msgs_per_s: float = 0.0
    cpu_s: float | None = None
    broker_cpu_s: float | None = None
    publisher_cpu_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_us_per_msg(self) -> float | None:
        """CPU microseconds of this process per message counted (issue #14's measure)."""
        if self.cpu_s is None or not self.counted:
            return None
        return round(self.cpu_s * 1e6 / self.counted, 1)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        data["cpu_us_per_msg"] = self.cpu_us_per_msg
        return data


@dataclass(kw_only=True)
class BenchReport:
    options: BenchOptions
    protocol: str
    phases: list[PhaseResult] = field(default_factory=list)
    sos_latency_ms: list[float] = field(default_factory=list)
    sos_ack_ms: list[float] = field(default_factory=list)
    sos_sent: int = 0
    interrupted: bool = False

    def phase(self, name: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.name == name), None)

    def as_json(self) -> dict[str, Any]:
        baseline, anxin = self.phase("baseline"), self.phase("anxin")
        baseline_rate = baseline.msgs_per_s if baseline else None
        anxin_rate = anxin.msgs_per_s if anxin else None
        ratio = (
            round(anxin_rate / baseline_rate, 3)
            if anxin_rate is not None and baseline_rate
            else None
        )
        return {
            "baseline_msgs_per_s": baseline_rate,
            "anxin_msgs_per_s": anxin_rate,
            "ratio": ratio,
            "sos_latency_ms_p50": percentile(self.sos_latency_ms, 50),
            "sos_latency_ms_p99": percentile(self.sos_latency_ms, 99),
            "sos_ack_ms_p50": percentile(self.sos_ack_ms, 50),
            "sos_ack_ms_p99": percentile(self.sos_ack_ms, 99),
            "sos_sent": self.sos_sent,
            "sos_committed": len(self.sos_latency_ms),
            "sos_acked": len(self.sos_ack_ms),
            "interrupted": self.interrupted,
            "settings": {
                "duration_s": self.options.duration_s,
                "rate": self.options.rate,
                "devices": self.options.devices,
                "protocol": self.protocol,
                "baseline_protocol": self.options.baseline_protocol,
                "qos": self.options.qos,
                "messages": self.options.messages,
                "sos_interval_s": self.options.sos_interval_s,
                "window": self.options.window,
            },
            "phases": {p.name: p.as_json() for p in self.phases},
            "versions": versions(),
        }


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile, in the values' unit, rounded to 0.01."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 2)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("paho-mqtt", "aiomqtt", "sqlalchemy"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


# Counting what the subscriber side got


class _Count:
    """Messages counted by one subscriber; written by one thread, read by the bench."""

    def __init__(self) -> None:
        self.value = 0
        self.last_ns = 0

    def add(self, count: int) -> None:
        self.value += count
        self.last_ns = time.monotonic_ns()


class _StoredCount(_Count):
    """What anxin committed: counted when the ingest service acknowledges a stored batch
    (it calls ``connection.ack`` for every batch, right after the commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.sos_committed: dict[str, list[int]] = {}

    def stored(self, deliveries: Sequence[Delivery]) -> None:
        self.add(len(deliveries))
        self.batches.append(len(deliveries))
        for delivery in deliveries:
            if delivery.topic.endswith("/sos"):
                device = delivery.topic.rsplit("/", 2)[-2]
                self.sos_committed.setdefault(device, []).append(self.last_ns)


def _count_acks(connection: MqttConnection, count: _StoredCount) -> None:
    """Have ``connection.ack`` count what it is given, after doing its work."""
    acknowledge = connection.ack

    def counted_ack(deliveries: Sequence[Delivery]) -> None:
        acknowledge(deliveries)
        count.stored(deliveries)

    setattr(connection, "ack", counted_ack)  # noqa: B010 - an instance attribute, on purpose


# The display


class Display:
    """A live line per phase on a terminal (standard error), nothing otherwise.

    Drawn four times a second at most: it shares the event loop with what it measures.
    """

    EVERY_S = 0.25

    def __init__(self, enabled: bool) -> None:
        self._live: Live | None = None
        self._console: Console | None = None
        self._rows: dict[str, str] = {}
        self._drawn_at = 0.0
        if enabled:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(stderr=True)
            self._live = Live(console=self._console, auto_refresh=False, transient=False)

    def __enter__(self) -> Display:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._live is not None:
            self._draw(hint=False)
            self._live.stop()

    def show(self, phase: str, text: str, final: bool = False) -> None:
        if self._live is None:
            return
        self._rows[phase] = text
        now = time.monotonic()
        if final or now - self._drawn_at >= self.EVERY_S:
            self._drawn_at = now
            self._draw(hint=True)

    def _draw(self, hint: bool) -> None:
        from rich.text import Text

        if self._live is None:
            return
        lines = [
            Text.assemble((f"{name:<9}", "bold"), f" {row}") for name, row in self._rows.items()
        ]
        if hint:
            lines.append(Text("Ctrl-C stops the bench", style="dim"))
        self._live.update(Text("\n").join(lines), refresh=True)

    def note(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)


# The publisher process


@dataclass(kw_only=True)
class _PublisherRun:
    published: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None


async def _drive_publisher(
    plan: PublisherPlan,
    counted: Callable[[], int],
    done: Callable[[_PublisherRun], bool],
    stop: asyncio.Event,
    on_progress: Callable[[_PublisherRun, float], None],
) -> _PublisherRun:
    """Run the publisher to its end, telling it the count, until ``done`` or the drain ends."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.bench_publisher",
        plan.to_json(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        # Our Ctrl-C is for us; the publisher stops when its standard input closes.
        start_new_session=True,
        cwd=SOURCE_ROOT,
    )
    if process.stdin is None or process.stdout is None:
        raise RuntimeError("the publisher's pipes are missing")
    run = _PublisherRun()
    reader = asyncio.create_task(_read_publisher(process.stdout, run))
    started = time.monotonic()
    drain_until: float | None = None
    try:
        told = -1
        while not stop.is_set():
            now_counted = counted()
            if run.report is None and now_counted != told and not process.stdin.is_closing():
                told = now_counted
                process.stdin.write(f"{now_counted}\n".encode())
                with contextlib.suppress(ConnectionError):
                    await process.stdin.drain()
            on_progress(run, time.monotonic() - started)
            if run.report is not None or reader.done():
                if done(run):
                    break
                drain_until = drain_until or time.monotonic() + DRAIN_S
                if time.monotonic() > drain_until:
                    break
            elif time.monotonic() - started > plan.duration_s + DRAIN_S:
                break  # the publisher is stuck
            await asyncio.sleep(FEED_EVERY_S)
        on_progress(run, time.monotonic() - started)
    finally:
        with contextlib.suppress(ConnectionError):
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
        with contextlib.suppress(Exception):  # its output ends with the process
            await asyncio.wait_for(reader, timeout=5)
    if run.report is None and run.error is None and not stop.is_set():
        run.error = f"the publisher exited with {process.returncode} before reporting"
    return run


async def _read_publisher(stream: asyncio.StreamReader, run: _PublisherRun) -> None:
    while line := await stream.readline():
        message = json.loads(line)
        if "published" in message:
            run.published = message["published"]
        if message.get("done"):
            run.report = message
            run.error = message.get("error")


# The phases


@dataclass(frozen=True, kw_only=True)
class _Setup:
    host: str
    port: int
    broker_pid: int
    prefix: str
    devices: list[str]
    subscriptions: list[str]


def _flood_plan(setup: _Setup, options: BenchOptions, client_id: str) -> PublisherPlan:
    cap = int(options.duration_s * FLOOD_CAP_PER_S)
    return PublisherPlan(
        host=setup.host,
        port=setup.port,
        prefix=setup.prefix,
        devices=setup.devices,
        mode="flood",
        duration_s=options.duration_s,
        max_messages=min(options.messages, cap) if options.messages else cap,
        qos=options.qos,
        window=options.window,
        client_id=client_id,
    )


async def _flood_phase(
    name: str,
    setup: _Setup,
    options: BenchOptions,
    count: _Count,
    stop: asyncio.Event,
    display: Display,
) -> PhaseResult:
    from simulators.bench_broker import machine_busy_s, process_cpu_s

    plan = _flood_plan(setup, options, f"anxin-bench-pub-{name}-{os.getpid()}")
    start_count = count.value
    broker_cpu = process_cpu_s(setup.broker_pid)
    cpu, machine = _cpu_s(), machine_busy_s()
    rate = _RateMeter()

    def progress(run: _PublisherRun, elapsed: float) -> None:
        counted = count.value - start_count
        display.show(
            name,
            f"{elapsed:5.1f} s  published {run.published:>9,}  counted {counted:>9,}"
            f"  {rate.update(counted):>8,.0f} msg/s",
        )

    run = await _drive_publisher(
        plan,
        lambda: count.value - start_count,
        lambda r: r.report is not None and count.value - start_count >= r.report["published"],
        stop,
        progress,
    )
    result = PhaseResult(name=name, cpu_s=_cpu_s() - cpu)
    broker_after, machine_after = process_cpu_s(setup.broker_pid), machine_busy_s()
    if broker_cpu is not None and broker_after is not None:
        result.broker_cpu_s = round(broker_after - broker_cpu, 3)
    result.counted = count.value - start_count
    report = run.report or {}
    result.published = report.get("published", run.published)
    result.publisher_cpu_s = report.get("cpu_s")
    first_ns = report.get("first_ns")
    if first_ns and result.counted and count.last_ns > first_ns:
        result.seconds = round((count.last_ns - first_ns) / 1e9, 3)
        result.msgs_per_s = round(result.counted / result.seconds, 1)
    result.cpu_s = round(result.cpu_s or 0.0, 3)
    other_load(result, machine, machine_after)
    display.show(
        name,
        f"{result.counted:,} of {result.published:,} in {result.seconds:.2f} s: "
        f"{result.msgs_per_s:,.0f} msg/s",
        final=True,
    )
    if run.error:
        result.extra["error"] = run.error
    return result


def other_load(
    result: PhaseResult, before: float | None, after: float | None, also_ours_s: float = 0.0
) -> None:
    """CPU seconds the rest of the machine used meanwhile: a busy machine skews the figures.
    ``also_ours_s``: what else the run itself used (the bench's other processes)."""
    if before is None or after is None:
        return
    ours = (result.cpu_s or 0) + (result.broker_cpu_s or 0) + (result.publisher_cpu_s or 0)
    ours += also_ours_s
    result.extra["machine_busy_s"] = round(after - before, 3)
    result.extra["other_processes_cpu_s"] = round(max(0.0, after - before - ours), 3)


class _RateMeter:
    """Messages a second over the last second or so, for the display."""

    def __init__(self) -> None:
        self._points: list[tuple[float, int]] = []

    def update(self, count: int) -> float:
        now = time.monotonic()
        self._points.append((now, count))
        while len(self._points) > 2 and now - self._points[0][0] > 1.0:
            self._points.pop(0)
        (t0, c0), (t1, c1) = self._points[0], self._points[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds of each live thread of this process so far, by thread name (Linux)."""
    from simulators.bench_broker import process_cpu_s

    found: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.native_id is None:
            continue
        seconds = process_cpu_s(os.getpid(), thread.native_id)
        if seconds is not None:
            found[thread.name] = round(found.get(thread.name, 0.0) + seconds, 3)
    return found


async def _baseline_phase(
    setup: _Setup, options: BenchOptions, stop: asyncio.Event, display: Display
) -> PhaseResult:
    try:
        import aiomqtt
    except ImportError as exc:
        raise typer.BadParameter(
            "the baseline needs aiomqtt (pip install -e '.[dev]'), or pass --no-baseline"
        ) from exc
    count = _Count()
    version = (
        aiomqtt.ProtocolVersion.V5
        if options.baseline_protocol == "5"
        else aiomqtt.ProtocolVersion.V311
    )
    async with aiomqtt.Client(
        setup.host,
        setup.port,
        identifier=f"anxin-bench-baseline-{os.getpid()}",
        protocol=version,
    ) as client:
        await client.subscribe([(topic, 1) for topic in setup.subscriptions])

        async def consume() -> None:
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    json.loads(payload)
                count.add(1)

        consumer = asyncio.create_task(consume())
        try:
            return await _flood_phase("baseline", setup, options, count, stop, display)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer


async def _anxin_phases(
    settings: Settings,
    setup: _Setup,
    database_url: str,
    options: BenchOptions,
    stop: asyncio.Event,
    display: Display,
    report: BenchReport,
) -> None:
    from alerting.feed import AlertFeed
    from anxin.database import open_database
    from anxin.service import broker_connection, ingest_service, message_decoder, settle_heap
    from devices.clock import system_clock
    from ingest.mqtt import BrokerAddress

    engine, sessions = open_database(database_url)
    decoder = message_decoder(settings)
    broker = BrokerAddress(host=setup.host, port=setup.port)
    # Built as `anxin ingest` builds them.
    connection = broker_connection(settings, broker, system_clock, decoder.subscriptions())
    service = ingest_service(settings, connection, decoder, sessions, AlertFeed(), system_clock)
    count = _StoredCount()
    _count_acks(connection, count)
    settle_heap()  # as `anxin ingest` does before it starts
    await connection.start()
    running = asyncio.create_task(service.run(), name="ingest")
    try:
        if not await connection.wait_connected(10):
            raise RuntimeError("anxin's broker connection did not come up within 10 s")
        await asyncio.sleep(0.2)  # the SUBACK
        if stop.is_set():
            return
        threads_before = _thread_cpu_s()
        anxin = await _flood_phase("anxin", setup, options, count, stop, display)
        threads_after = _thread_cpu_s()
        batches = count.batches
        anxin.extra.update(
            batches=len(batches),
            mean_batch=round(sum(batches) / len(batches), 1) if batches else 0,
            largest_batch=max(batches, default=0),
            threads_cpu_s={
                name: round(seconds - threads_before.get(name, 0.0), 3)
                for name, seconds in threads_after.items()
            },
        )
        report.phases.append(anxin)
        if stop.is_set():
            return
        await _sos_phase(setup, options, count, stop, display, report)
    finally:
        service.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, timeout=30)
        await connection.stop()
        engine.dispose()


async def _sos_phase(
    setup: _Setup,
    options: BenchOptions,
    count: _StoredCount,
    stop: asyncio.Event,
    display: Display,
    report: BenchReport,
) -> None:
    from simulators.bench_broker import machine_busy_s, process_cpu_s

    plan = PublisherPlan(
        host=setup.host,
        port=setup.port,
        prefix=setup.prefix,
        devices=setup.devices,
        mode="paced",
        duration_s=options.duration_s,
        max_messages=int(options.duration_s * options.rate) + 1,
        qos=options.qos,
        rate=options.rate,
        sos_interval_s=options.sos_interval_s,
        client_id=f"anxin-bench-pub-sos-{os.getpid()}",
    )
    committed = count.sos_committed
    committed.clear()
    start_count, start_batches = count.value, len(count.batches)
    cpu, broker_cpu, machine = _cpu_s(), process_cpu_s(setup.broker_pid), machine_busy_s()

    def sos_done(run: _PublisherRun) -> bool:
        # Every SOS committed, and every heartbeat stored too.
        report = run.report or {}
        sent = len(report.get("sos", []))
        stored = sum(len(times) for times in committed.values())
        return stored >= sent and count.value - start_count >= report.get("published", 0) + sent

    def progress(run: _PublisherRun, elapsed: float) -> None:
        stored = sum(len(times) for times in committed.values())
        display.show(
            "sos",
            f"{elapsed:5.1f} s  heartbeats {run.published:>9,} at {options.rate:,.0f}/s"
            f"  SOS committed {stored:>5,}",
        )

    run = await _drive_publisher(plan, lambda: count.value - start_count, sos_done, stop, progress)
    data = run.report or {}
    sent: list[tuple[str, int]] = [(str(d), int(t)) for d, t in data.get("sos", [])]
    acks: list[tuple[str, int]] = [(str(d), int(t)) for d, t in data.get("acks", [])]
    report.sos_sent = len(sent)
    report.sos_latency_ms = _pair(sent, committed)
    ack_times: dict[str, list[int]] = {}
    for device, at in acks:
        ack_times.setdefault(device, []).append(at)
    report.sos_ack_ms = _pair(sent, ack_times)
    phase = PhaseResult(
        name="sos",
        published=data.get("published", run.published),
        counted=count.value - start_count,
        seconds=options.duration_s,
        msgs_per_s=options.rate,
        cpu_s=round(_cpu_s() - cpu, 3),
        publisher_cpu_s=data.get("cpu_s"),
    )
    broker_after = process_cpu_s(setup.broker_pid)
    if broker_cpu is not None and broker_after is not None:
        phase.broker_cpu_s = round(broker_after - broker_cpu, 3)
    other_load(phase, machine, machine_busy_s())
    batches = count.batches[start_batches:]
    phase.extra.update(
        batches=len(batches),
        mean_batch=round(sum(batches) / len(batches), 1) if batches else 0,
        largest_batch=max(batches, default=0),
    )
    if run.error:
        phase.extra["error"] = run.error
    report.phases.append(phase)
    latencies = report.sos_latency_ms
    display.show(
        "sos",
        f"{len(latencies)} of {len(sent)} SOS committed: "
        f"p50 {percentile(latencies, 50)} ms, p99 {percentile(latencies, 99)} ms",
        final=True,
    )


def _pair(sent: Sequence[tuple[str, int]], seen: dict[str, list[int]]) -> list[float]:
    """Milliseconds from each SOS sent to the first later sighting of its device."""
    taken: dict[str, int] = {}
    latencies = []
    for device, sent_ns in sent:
        times = seen.get(device, [])
        index = taken.get(device, 0)
        while index < len(times) and times[index] < sent_ns:
            index += 1
        if index < len(times):
            latencies.append((times[index] - sent_ns) / 1e6)
            taken[device] = index + 1
    return latencies


# The whole run


def register_devices(database_url: str, devices: Sequence[str]) -> None:
    from anxin.database import open_database, upgrade
    from devices.registry import register_device

    engine, sessions = open_database(database_url)
    try:
        upgrade(engine)
        with sessions.begin() as session:
            for device_id in devices:
                register_device(session, device_id, DEVICE_MODEL)
    finally:
        engine.dispose()


async def run_bench(
    settings: Settings, options: BenchOptions, display: Display, stop: asyncio.Event
) -> BenchReport:
    from simulators.bench_broker import running_broker

    protocol = options.protocol or settings.mqtt_protocol
    report = BenchReport(options=options, protocol=protocol)
    with tempfile.TemporaryDirectory(prefix="anxin-bench-") as folder:
        work = Path(folder)
        database_url = f"sqlite:///{work / 'anxin.db'}"
        settings = settings.model_copy(
            update={
                "database_url": database_url,
                "mqtt_client_id": f"anxin-bench-{os.getpid()}",
                "mqtt_protocol": protocol,
                "mqtt_shared_group": None,
                "var_dir": work / "var",
            }
        )
        devices = [f"bench-{index:05d}" for index in range(options.devices)]
        display.note(f"registering {len(devices):,} devices in {database_url}")
        await asyncio.to_thread(register_devices, database_url, devices)
        with running_broker(work) as broker:
            display.note(
                f"mosquitto on {broker.url} (pid {broker.pid}); anxin speaks MQTT {protocol}"
            )
            from anxin.service import message_decoder

            setup = _Setup(
                host=broker.host,
                port=broker.port,
                broker_pid=broker.pid,
                prefix=settings.mqtt_topic_prefix,
                devices=devices,
                subscriptions=message_decoder(settings).subscriptions(),
            )
            if options.baseline and not stop.is_set():
                report.phases.append(await _baseline_phase(setup, options, stop, display))
            if not stop.is_set():
                await _anxin_phases(settings, setup, database_url, options, stop, display, report)
    report.interrupted = stop.is_set()
    return report


async def _run_with_signals(
    settings: Settings, options: BenchOptions, display: Display
) -> BenchReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        stop.set()
        # A second Ctrl-C is the usual KeyboardInterrupt.
        loop.remove_signal_handler(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, interrupted)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        return await run_bench(settings, options, display, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


# The command line


def summary(report: BenchReport) -> str:
    data = report.as_json()

    def rate(value: float | None) -> str:
        return f"{value:,.0f} msg/s" if value is not None else "not measured"

    def ms(value: float | None) -> str:
        return f"{value:.1f} ms" if value is not None else "n/a"

    lines = [
        f"anxin bench ingest: {report.options.devices:,} devices, MQTT {report.protocol} "
        f"(baseline {report.options.baseline_protocol}), "
        f"heartbeats QoS {report.options.qos}, {report.options.duration_s:g} s a phase",
    ]
    for phase in report.phases:
        if phase.name == "sos":
            continue
        cpu = f", {phase.cpu_s:.1f} CPU-s in this process" if phase.cpu_s is not None else ""
        if phase.cpu_us_per_msg is not None:
            cpu += f", {phase.cpu_us_per_msg:.1f} µs a message"
        lines.append(
            f"  {phase.name:<9} {rate(phase.msgs_per_s):>14}  "
            f"({phase.counted:,} of {phase.published:,} in {phase.seconds:.2f} s{cpu})"
        )
    ratio = data["ratio"]
    lines.append(f"  ratio     {ratio:.2f}" if ratio is not None else "  ratio     n/a")
    lines.append(
        f"  SOS publish → alert committed: p50 {ms(data['sos_latency_ms_p50'])}, "
        f"p99 {ms(data['sos_latency_ms_p99'])} "
        f"({data['sos_committed']} of {data['sos_sent']} SOS, heartbeats at "
        f"{report.options.rate:,.0f}/s)"
    )
    lines.append(
        f"  SOS publish → Ack at the device: p50 {ms(data['sos_ack_ms_p50'])}, "
        f"p99 {ms(data['sos_ack_ms_p99'])} ({data['sos_acked']} Acks)"
    )
    if report.interrupted:
        lines.append("  (interrupted: figures cover what ran)")
    return "\n".join(lines)


bench_app = typer.Typer(help="Measurements of this machine and this build.", no_args_is_help=True)
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of a summary.")
]


def quiet_logs(ctx: typer.Context) -> None:
    """anxin's own log lines would tear the display; warnings and errors still show."""
    from anxin.logs import configure_logging

    settings: Settings = ctx.obj
    configure_logging(settings.log_format, "warning")


@bench_app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    duration: Annotated[
        float, typer.Option("--duration", min=0.5, max=600, help="Seconds of each phase.")
    ] = 10.0,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", min=1, max=100_000, help="Heartbeats a second while SOS latency is measured."
        ),
    ] = 2000.0,
    as_json: JsonOption = False,
    devices: Annotated[
        int, typer.Option("--devices", min=1, max=100_000, help="Registered devices.")
    ] = 1000,
    protocol: Annotated[
        str | None,
        typer.Option("--protocol", help="anxin's MQTT version, 5 or 3.1.1 (default: configured)."),
    ] = None,
    baseline_protocol: Annotated[
        str,
        typer.Option("--baseline-protocol", help="The aiomqtt baseline's MQTT version."),
    ] = "3.1.1",
    qos: Annotated[int, typer.Option("--qos", min=0, max=1, help="QoS of the heartbeats.")] = 0,
    messages: Annotated[
        int | None,
        typer.Option("--messages", min=1, help="At most this many heartbeats per flood phase."),
    ] = None,
    sos_interval: Annotated[
        float, typer.Option("--sos-interval", min=0.005, help="Seconds between two SOS.")
    ] = 0.1,
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Measure the aiomqtt baseline.")
    ] = True,
) -> None:
    """Heartbeats stored a second by anxin vs. a bare aiomqtt subscriber, and SOS latency."""
    for given, hint in ((protocol, "--protocol"), (baseline_protocol, "--baseline-protocol")):
        if given not in (None, "5", "3.1.1"):
            raise typer.BadParameter("5 or 3.1.1", param_hint=hint)
    quiet_logs(ctx)
    options = BenchOptions(
        duration_s=duration,
        rate=rate,
        devices=devices,
        protocol=protocol,  # type: ignore[arg-type]
        baseline_protocol=baseline_protocol,  # type: ignore[arg-type]
        qos=qos,
        messages=messages,
        sos_interval_s=sos_interval,
        baseline=baseline,
    )
    with Display(sys.stderr.isatty()) as display:
        report = asyncio.run(_run_with_signals(ctx.obj, options, display))
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        typer.echo(summary(report))
    if report.interrupted:
        raise typer.Exit(130)
