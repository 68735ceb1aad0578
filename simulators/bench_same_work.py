"""``anxin bench same-work``: anxin next to the bare floor and Node-RED on the same work (#14).

The work: N QoS 1 heartbeats from C publishers (20 Debian ``mosquitto_pub -l``, one device
each, faster than every consumer), each stored as an InfluxDB point, the low batteries (one
heartbeat in 100, battery 10) as alerts in SQLite. One Mosquitto and one influxd, started for
the run in a temporary folder, serve three consumers in turn, each with a database of its own:

1. **floor**: ``simulators.bench_floor``, a bare paho subscriber that decodes and writes line
   protocol, nothing else: what any consumer must at least do in Python. It raises no alerts.
2. **anxin**: ``anxin serve`` (SQLite, InfluxDB v1), the publishing devices registered.
3. **node-red**: Node-RED wired for the same work (``simulators/node_red/flows.json``, the
   peer of ``../shared/peers``), when it is installed (``--node-red DIR``); skipped otherwise.

A consumer is ready once a probe heartbeat it was sent is a point in its database. Then the
publishers start; the phase's rate is N over the time from their start to the N-th point in
InfluxDB, its CPU that of the consumer's process over that time, a message counted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from simulators.bench import (
    SOURCE_ROOT,
    Display,
    JsonOption,
    PhaseResult,
    other_load,
    quiet_logs,
    register_devices,
    versions,
)
from simulators.bench_broker import (
    BenchBroker,
    die_with_parent,
    free_port,
    machine_busy_s,
    process_cpu_s,
    running_broker,
    stop_process,
)
from simulators.bench_influx import BenchInflux, running_influxd

PUBLISHERS = 20
LOW_BATTERY_EVERY = 100  # 1 % of the heartbeats, at battery 10: an alert for anxin and Node-RED
# The Node-RED flow subscribes to this prefix; anxin serve runs with its default, the same.
PREFIX = "anxin/v1"
PROBE_DEVICE = "probe"  # as in _POINTS and _PROBES
READY_WITHIN_S = 60.0
# After the N-th point, how long alerts may take to show (Node-RED inserts them on its own).
ALERTS_GRACE_S = 5.0
POLL_S = 0.02
MAX_MESSAGES = 500_000
DEFAULT_NODE_RED_DIR = Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "anxin-peer", "node-red"
)
_FLOW = Path(__file__).resolve().parent / "node_red"
_ALERTS_TABLE = (
    "CREATE TABLE alerts(id INTEGER PRIMARY KEY, device_id TEXT, type TEXT, priority TEXT,"
    " created_at INTEGER)"
)


@dataclass(frozen=True, kw_only=True)
class SameWorkOptions:
    messages: int = 100_000
    # None: Node-RED left out of the run.
    node_red_dir: Path | None = DEFAULT_NODE_RED_DIR
    phase_timeout_s: float = 180.0
    # py-spy's raw (collapsed) stacks of anxin serve during its phase, to this file; None: none.
    profile: Path | None = None

    @property
    def expected_alerts(self) -> int:
        return math.ceil(self.messages / LOW_BATTERY_EVERY)


@dataclass(frozen=True, kw_only=True)
class Consumer:
    """A process doing the work: how to start it, where it stores."""

    name: str
    command: list[str]
    database: str  # in InfluxDB
    alerts_db: Path | None  # a SQLite file with an `alerts` table; None: it raises none
    env: dict[str, str] = field(default_factory=dict)
    metrics_url: str | None = None  # anxin's /metrics: how many batches it stored the work in


@dataclass(frozen=True, kw_only=True)
class _Services:
    folder: Path
    broker: BenchBroker
    influx: BenchInflux


@dataclass(kw_only=True)
class SameWorkReport:
    options: SameWorkOptions
    phases: list[PhaseResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    load_after: tuple[float, float, float] | None = None
    interrupted: bool = False
    node_red_version: str | None = None

    def phase(self, name: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.name == name), None)

    def ratios(self, other: str) -> dict[str, float | None]:
        """anxin's rate and CPU a message over another phase's."""
        anxin, them = self.phase("anxin"), self.phase(other)
        if anxin is None or them is None:
            return {"msgs_per_s": None, "cpu_us_per_msg": None}
        cpu, their_cpu = anxin.cpu_us_per_msg, them.cpu_us_per_msg
        return {
            "msgs_per_s": round(anxin.msgs_per_s / them.msgs_per_s, 2) if them.msgs_per_s else None,
            "cpu_us_per_msg": round(cpu / their_cpu, 2) if cpu and their_cpu else None,
        }

    def failures(self) -> list[str]:
        """What a run that did the whole work would not show."""
        found = []
        for phase in self.phases:
            if phase.counted != self.options.messages:
                found.append(f"{phase.name}: {phase.counted:,} of {self.options.messages:,} points")
            expected, alerts = phase.extra.get("expected_alerts"), phase.extra.get("alerts")
            if expected is not None and alerts != expected:
                found.append(f"{phase.name}: {alerts} alerts, {expected} expected")
            if "error" in phase.extra:
                found.append(f"{phase.name}: {phase.extra['error']}")
        return found

    def as_json(self) -> dict[str, Any]:
        phases: dict[str, Any] = {p.name: p.as_json() for p in self.phases}
        phases.update({name: {"skipped": why} for name, why in self.skipped.items()})
        return {
            "messages": self.options.messages,
            "publishers": PUBLISHERS,
            "expected_alerts": self.options.expected_alerts,
            "phases": phases,
            "anxin_to_node_red": self.ratios("node-red"),
            "anxin_to_floor": self.ratios("floor"),
            "failures": self.failures(),
            "load_average_before": _rounded(self.load_before),
            "load_average_after": _rounded(self.load_after),
            "interrupted": self.interrupted,
            "versions": versions()
            | ({"node-red": self.node_red_version} if self.node_red_version else {}),
        }


def _rounded(load: tuple[float, ...] | None) -> list[float] | None:
    return [round(value, 2) for value in load] if load is not None else None


# The consumers


def _floor(services: _Services) -> Consumer:
    return Consumer(
        name="floor",
        command=[
            sys.executable,
            "-m",
            "simulators.bench_floor",
            str(services.broker.port),
            str(services.influx.port),
            "floor",
            PREFIX,
        ],
        database="floor",
        alerts_db=None,
    )


def _anxin(services: _Services) -> Consumer:
    alerts_db = services.folder / "anxin.db"
    register_devices(f"sqlite:///{alerts_db}", [*_devices(), PROBE_DEVICE])
    # Only what the run sets: a user's ANXIN_* (a config, credentials) is not for this broker.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANXIN_")}
    env.update(
        ANXIN_MQTT_URL=services.broker.url,
        ANXIN_MQTT_CLIENT_ID=f"anxin-bench-same-work-{os.getpid()}",
        ANXIN_DATABASE_URL=f"sqlite:///{alerts_db}",
        ANXIN_VAR_DIR=str(services.folder / "var"),
        ANXIN_API_HOST="127.0.0.1",
        ANXIN_API_PORT=str(api_port := free_port()),
        ANXIN_LOG_FORMAT="json",
        ANXIN_LOG_LEVEL="warning",
        ANXIN_INFLUX_URL=services.influx.url,
        ANXIN_INFLUX_DB="anxin",
    )
    return Consumer(
        name="anxin",
        command=[sys.executable, "-c", "from anxin.cli import main; main()", "serve"],
        database="anxin",
        alerts_db=alerts_db,
        env=env,
        metrics_url=f"http://127.0.0.1:{api_port}/metrics",
    )


def _stored_batches(metrics_url: str) -> int | None:
    """How many batches ingest stored (its batch-size histogram's count): fewer, larger batches
    cost less a message, so the figure explains part of a run's CPU."""
    try:
        text = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith("anxin_ingest_batch_messages_count "):
            return int(float(line.split()[1]))
    return None


def node_red_missing(directory: Path | None) -> str | None:
    """Why Node-RED cannot run from ``directory``; None when it can."""
    if directory is None:
        return "left out (--no-node-red)"
    if not (directory / "node_modules" / ".bin" / "node-red").exists():
        return f"not installed in {directory} (../shared/peers/install-node-red.sh installs it)"
    if shutil.which("node") is None:
        return "node is not on the PATH (Debian: apt-get install nodejs)"
    return None


def node_red_version(directory: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        package = directory / "node_modules" / "node-red" / "package.json"
        return str(json.loads(package.read_text())["version"])
    return None


def _node_red(services: _Services, directory: Path) -> Consumer:
    user_dir = services.folder / "node-red"
    user_dir.mkdir()
    for name in ("flows.json", "settings.js"):
        shutil.copy(_FLOW / name, user_dir / name)
    alerts_db = user_dir / "alerts.db"
    with contextlib.closing(sqlite3.connect(alerts_db)) as db:
        db.execute(_ALERTS_TABLE)
    env = dict(
        os.environ,
        MQTT_PORT=str(services.broker.port),
        INFLUX_PORT=str(services.influx.port),
        INFLUX_DB="node_red",
        SQLITE_PATH=str(alerts_db),
        NR_PORT=str(free_port()),
    )
    return Consumer(
        name="node-red",
        command=[
            str(directory / "node_modules" / ".bin" / "node-red"),
            "--userDir",
            str(user_dir),
            "--settings",
            str(user_dir / "settings.js"),
        ],
        database="node_red",
        alerts_db=alerts_db,
        env=env,
    )


def _count_alerts(alerts_db: Path) -> int:
    with contextlib.closing(sqlite3.connect(alerts_db, timeout=10)) as db:
        row = db.execute("SELECT count(*) FROM alerts WHERE type = 'low_battery'").fetchone()
        return int(row[0])


# The traffic


def _devices() -> list[str]:
    return [f"d{k}" for k in range(PUBLISHERS)]


def write_heartbeats(folder: Path, messages: int) -> list[Path]:
    """One file of JSON lines per publisher: heartbeat i from device i mod PUBLISHERS, battery 10
    for one in LOW_BATTERY_EVERY. A device's timestamps are 1 ms apart and end a second ago
    (well within anxin's accepted skew), so that each is a point of its own in InfluxDB."""
    start_ms = int(time.time() * 1000) - messages // PUBLISHERS - 1000
    files = [folder / f"publisher-{k}.txt" for k in range(PUBLISHERS)]
    lines: list[list[str]] = [[] for _ in files]
    for i in range(messages):
        battery = 10 if i % LOW_BATTERY_EVERY == 0 else 90
        lines[i % PUBLISHERS].append(
            f'{{"seq":{i},"battery":{battery},"rssi":-60,"ts":{start_ms + i // PUBLISHERS}}}\n'
        )
    for path, text in zip(files, lines, strict=True):
        path.write_text("".join(text))
    return files


def _mosquitto_pub(broker: BenchBroker, client_id: str, device: str, *args: str) -> list[str]:
    return [
        shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub",
        *("-h", broker.host, "-p", str(broker.port), "-q", "1", "-i", client_id),
        *("-t", f"{PREFIX}/{device}/heartbeat", *args),
    ]


@contextlib.contextmanager
def _publishing(
    broker: BenchBroker, files: list[Path], phase: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The publishers, each reading its file; killed if still running when the phase ends."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for k, path in enumerate(files):
            with path.open("rb") as lines:
                command = _mosquitto_pub(broker, f"pub{k}-{phase}", f"d{k}", "-l")
                processes.append(
                    subprocess.Popen(  # noqa: S603 - our own command line, no shell
                        command, stdin=lines, stderr=subprocess.DEVNULL, start_new_session=True
                    )
                )
        yield processes
    finally:
        for process in processes:
            stop_process(process, within_s=1)


# A phase


def py_spy_path() -> str | None:
    """py-spy on the PATH or beside this Python (pip install py-spy into the venv); None."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


@contextlib.contextmanager
def _profiling(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy sampling the process meanwhile (its CPU is not the consumer's, but it shares the
    cores: a profiled run's figures are not for comparing); nothing when ``output`` is None."""
    if output is None:
        yield
        return
    record = [py_spy_path() or "py-spy", "record", "-p", str(pid), "-o", str(output)]
    spy = subprocess.Popen(  # noqa: S603 - our own command line, no shell
        [*record, "-f", "raw", "-r", "200", "--threads", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process(spy, within_s=1)


@contextlib.contextmanager
def _consuming(consumer: Consumer, services: _Services) -> Iterator[subprocess.Popen[bytes]]:
    services.influx.create_database(consumer.database)
    with (services.folder / f"{consumer.name}.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
            consumer.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=consumer.env or None,
            cwd=SOURCE_ROOT,
            start_new_session=True,  # our Ctrl-C is for us
            preexec_fn=die_with_parent(),
        )
    try:
        yield process
    finally:
        stop_process(process, within_s=10)


_POINTS = "SELECT count(battery) FROM heartbeat WHERE device_id != 'probe'"
_PROBES = "SELECT count(battery) FROM heartbeat WHERE device_id = 'probe'"


def _points(services: _Services, database: str, probe: bool = False) -> int:
    return services.influx.count(database, _PROBES if probe else _POINTS)


def _wait_ready(
    consumer: Consumer, process: subprocess.Popen[bytes], services: _Services, display: Display
) -> str | None:
    """Probe heartbeats until one is a point: the consumer is subscribed and stores."""
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < READY_WITHIN_S:
        if process.poll() is not None:
            return f"exited with {process.returncode} ({services.folder / consumer.name}.log)"
        payload = json.dumps(
            {"seq": seq, "battery": 90, "rssi": -60, "ts": int(time.time() * 1000)}
        )
        probe = _mosquitto_pub(services.broker, "anxin-bench-probe", PROBE_DEVICE, "-m", payload)
        subprocess.run(probe, check=False, capture_output=True, timeout=10)  # noqa: S603
        seq += 1
        for _ in range(25):  # half a second
            if _points(services, consumer.database, probe=True):
                return None
            time.sleep(POLL_S)
        display.show(consumer.name, f"starting ({time.monotonic() - started:4.1f} s)")
    return f"not ready within {READY_WITHIN_S:.0f} s"


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return "━" * filled + "╌" * (width - filled) + f" {100 * done // max(1, total):3d} %"


def run_phase(
    consumer: Consumer, services: _Services, options: SameWorkOptions, display: Display
) -> PhaseResult:
    n = options.messages
    result = PhaseResult(name=consumer.name, published=n)
    if consumer.alerts_db is not None:
        result.extra["expected_alerts"] = options.expected_alerts
    with _consuming(consumer, services) as process:
        error = _wait_ready(consumer, process, services, display)
        if error:
            result.extra["error"] = error
            return result
        files = write_heartbeats(services.folder, n)
        pid, broker_pid = process.pid, services.broker.pid
        cpu, broker_cpu, machine = process_cpu_s(pid), process_cpu_s(broker_pid), machine_busy_s()
        run_cpu = _run_cpu_s(services)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        published_s: float | None = None
        profile = options.profile if consumer.name == "anxin" else None
        with (
            _profiling(pid, profile),
            _publishing(services.broker, files, consumer.name) as publishers,
        ):
            while (elapsed := time.monotonic() - started) < options.phase_timeout_s:
                result.counted = _points(services, consumer.database)
                if published_s is None and all(p.poll() is not None for p in publishers):
                    published_s = round(elapsed, 3)
                rate = result.counted / elapsed if elapsed else 0.0
                display.show(
                    consumer.name,
                    f"{_bar(result.counted, n)}  {result.counted:>9,} of {n:,} points"
                    f"  {rate:>8,.0f} msg/s",
                )
                if result.counted >= n or process.poll() is not None:
                    break
                time.sleep(POLL_S)
            result.seconds = round(time.monotonic() - started, 3)
            cpu_after, broker_after = process_cpu_s(pid), process_cpu_s(broker_pid)
            machine_after, run_cpu_after = machine_busy_s(), _run_cpu_s(services)
            failed = [p.returncode for p in publishers if p.returncode]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result.publisher_cpu_s = round(
            after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 3
        )
        if cpu is not None and cpu_after is not None:
            result.cpu_s = round(cpu_after - cpu, 3)
        if broker_cpu is not None and broker_after is not None:
            result.broker_cpu_s = round(broker_after - broker_cpu, 3)
        # influxd and this process (which counts the points) are the run's too.
        result.extra["influxd_and_bench_cpu_s"] = round(run_cpu_after - run_cpu, 3)
        other_load(result, machine, machine_after, run_cpu_after - run_cpu)
        result.msgs_per_s = round(result.counted / result.seconds, 1) if result.seconds else 0.0
        # When the publishers were done: well before the last point, they were the faster.
        result.extra["published_s"] = published_s
        if failed:
            result.extra["error"] = f"mosquitto_pub exited with {failed[0]}"
        elif process.poll() is not None:
            result.extra["error"] = f"exited with {process.returncode}"
        if consumer.alerts_db is not None:
            result.extra["alerts"] = _settled_alerts(consumer.alerts_db, options.expected_alerts)
        if consumer.metrics_url is not None:
            result.extra["stored_batches"] = _stored_batches(consumer.metrics_url)
    display.show(consumer.name, _phase_line(result), final=True)
    return result


def _run_cpu_s(services: _Services) -> float:
    """CPU seconds so far of influxd and of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (process_cpu_s(services.influx.pid) or 0.0) + usage.ru_utime + usage.ru_stime


def _settled_alerts(alerts_db: Path, expected: int) -> int:
    deadline = time.monotonic() + ALERTS_GRACE_S
    while (alerts := _count_alerts(alerts_db)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return alerts


# The whole run


def run_same_work(options: SameWorkOptions, display: Display) -> SameWorkReport:
    report = SameWorkReport(options=options)
    why_not_node_red = node_red_missing(options.node_red_dir)
    try:
        with tempfile.TemporaryDirectory(prefix="anxin-same-work-") as folder:
            work = Path(folder)
            with (
                running_broker(work, settings=["max_queued_messages 0"]) as broker,
                running_influxd(work / "influxd") as influx,
            ):
                services = _Services(folder=work, broker=broker, influx=influx)
                display.note(f"mosquitto on {broker.url}, influxd on {influx.url}, in {work}")
                consumers = [_floor(services), _anxin(services)]
                if why_not_node_red is None and options.node_red_dir is not None:
                    consumers.append(_node_red(services, options.node_red_dir))
                    report.node_red_version = node_red_version(options.node_red_dir)
                else:
                    report.skipped["node-red"] = why_not_node_red or "left out"
                    display.show("node-red", f"skipped: {report.skipped['node-red']}", final=True)
                for consumer in consumers:
                    report.phases.append(run_phase(consumer, services, options, display))
    except KeyboardInterrupt:
        report.interrupted = True
    report.load_after = os.getloadavg()
    return report


# The command line


def _phase_line(phase: PhaseResult) -> str:
    cpu = f"{phase.cpu_us_per_msg:6.1f} µs a message" if phase.cpu_us_per_msg else "CPU n/a"
    alerts = phase.extra.get("alerts")
    expected = phase.extra.get("expected_alerts")
    alert_text = f"{alerts:,} of {expected:,} alerts" if expected is not None else "no alerts"
    line = (
        f"{phase.msgs_per_s:>9,.0f} msg/s  {cpu}  {phase.counted:,} points, {alert_text}"
        f" ({phase.seconds:.2f} s)"
    )
    return line + (f"  ERROR: {phase.extra['error']}" if "error" in phase.extra else "")


def summary(report: SameWorkReport) -> str:
    options, load = report.options, report.load_before
    lines = [
        f"anxin bench same-work: {options.messages:,} QoS 1 heartbeats from {PUBLISHERS} "
        f"mosquitto_pub, 1 in {LOW_BATTERY_EVERY} a low battery; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    ]
    lines += [f"  {p.name:<9} {_phase_line(p)}" for p in report.phases]
    lines += [f"  {name:<9} skipped: {why}" for name, why in report.skipped.items()]
    for other in ("node-red", "floor"):
        ratios = report.ratios(other)
        if ratios["msgs_per_s"] is not None:
            lines.append(
                f"  anxin / {other}: {ratios['msgs_per_s']:.2f}× the rate, "
                f"{ratios['cpu_us_per_msg'] or float('nan'):.2f}× the CPU a message"
            )
    failures = report.failures()
    if report.interrupted:
        lines.append("  (interrupted: figures cover the phases that ended)")
    checked = "every point stored, every alert" if not report.interrupted else "not all ran"
    lines.append("  checks: " + ("; ".join(failures) if failures else checked))
    return "\n".join(lines)


def same_work_command(
    ctx: typer.Context,
    messages: Annotated[
        int,
        typer.Option("--messages", min=100, max=MAX_MESSAGES, help="Heartbeats a phase."),
    ] = 100_000,
    node_red: Annotated[
        Path | None,
        typer.Option("--node-red", help="Node-RED's install folder (install-node-red.sh)."),
    ] = DEFAULT_NODE_RED_DIR,
    no_node_red: Annotated[
        bool, typer.Option("--no-node-red", help="Leave Node-RED out of the run.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=5, max=1800, help="Seconds a phase may take at most."),
    ] = 180.0,
    profile: Annotated[
        Path | None,
        typer.Option("--profile", help="py-spy's raw stacks of anxin serve's phase, to FILE."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The same work by the bare paho floor, anxin serve and Node-RED: rate and CPU a message."""
    quiet_logs(ctx)  # httpx logs each request it makes
    if profile is not None and py_spy_path() is None:
        raise typer.BadParameter("needs py-spy (pip install py-spy)", param_hint="--profile")
    options = SameWorkOptions(
        messages=messages,
        node_red_dir=None if no_node_red else node_red,
        phase_timeout_s=timeout,
        profile=profile,
    )
    with Display(sys.stderr.isatty()) as display:
        report = run_same_work(options, display)
    typer.echo(json.dumps(report.as_json(), ensure_ascii=False) if as_json else summary(report))
    if report.interrupted:
        raise typer.Exit(130)
    if report.failures():
        raise typer.Exit(1)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("same-work")(same_work_command)
