"""`anxin simulate`, `anxin record` and `anxin replay`: the composition of simulators/ with the
configured database, rules and broker."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.store import AlertRow
from anxin.database import open_database, require_current_schema, upgrade
from anxin.settings import Settings
from api.users import UserError
from simulators.scenario_file import ScenarioError, parse_duration
from simulators.traffic import (
    TrafficFormatError,
    TrafficLine,
    TrafficMessage,
    read_traffic,
    topics_of,
)

if TYPE_CHECKING:
    from simulators.live import LiveFleet
    from simulators.replay_api import PlatformApi
    from simulators.scenario import Scenario


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _duration(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def _fast_sqlite(sessions: sessionmaker[Session]) -> None:
    """A throwaway store: no fsync (a crash loses nothing worth keeping)."""
    engine = sessions.kw["bind"]

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()


def replay(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A traffic file (JSON Lines, contract §3).")],
    speed: Annotated[
        float, typer.Option("--speed", min=0.01, max=100_000, help="Against the broker: pace × X.")
    ] = 1.0,
    virtual: Annotated[
        bool,
        typer.Option("--virtual", help="No broker: straight through the rules in virtual time."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per alert raised, a line each.")
    ] = False,
    expect: Annotated[
        Path | None,
        typer.Option("--expect", help="A scenario: exit 1 unless its expected alerts were raised."),
    ] = None,
    tick: Annotated[
        str,
        typer.Option(
            "--tick",
            help="Virtual: batch and scheduler step (`serve` steps every 5s); a bare number is"
            " seconds.",
        ),
    ] = "60s",
    keep_db: Annotated[
        Path | None,
        typer.Option("--keep-db", help="Virtual: keep the replay's SQLite database here."),
    ] = None,
    sql_store: Annotated[
        bool,
        typer.Option(
            "--sql-store",
            help="Virtual: the state in SQL between batches, every tick a scheduler pass, as"
            " live (slower; what the default in-memory path is checked against).",
        ),
    ] = False,
    settle: Annotated[
        float, typer.Option("--settle", min=1, max=600, help="Broker: wait for ingest this long.")
    ] = 60.0,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="Broker: read the alerts raised through this anxin's HTTP API (e.g."
            " https://staging.example:8000) instead of its database; token from ANXIN_API_TOKEN,"
            " or --user.",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="With --api: log in as this user (an engineer or admin); password from"
            " ANXIN_API_PASSWORD, or asked.",
        ),
    ] = None,
) -> None:
    """Play a traffic file back: to the broker at --speed, or --virtual through the rules."""
    from anxin.logs import configure_logging

    settings = _settings(ctx)
    configure_logging(settings.log_format, "error")
    expected = None
    if expect is not None:
        from simulators.scenario import load_scenario

        try:
            expected = load_scenario(expect, settings.catalogue).expected
        except ScenarioError as exc:
            raise UserError(str(exc)) from exc
    try:
        if virtual:
            tick_s = _duration(tick, "--tick") or 5.0
            alerts = _replay_virtual(settings, file, tick_s, keep_db, in_memory=not sql_store)
        else:
            alerts = _replay_live(settings, file, speed, settle, _platform(api, user))
    except TrafficFormatError as exc:
        raise UserError(str(exc)) from exc
    for alert in alerts:
        if as_json:
            typer.echo(json.dumps(alert, ensure_ascii=False))
        else:
            typer.echo(
                f"{alert['created_at']}  {alert['priority']:<8} {alert['type']:<15} "
                f"{alert['device_id']}  {alert['status']} ×{alert['count']}"
            )
    if expected is not None:
        from simulators.expect import differences

        found = differences(expected, alerts)
        for line in found[:50]:
            typer.echo(f"anxin: {line}", err=True)
        if len(found) > 50:
            typer.echo(f"anxin: … and {len(found) - 50} more differences", err=True)
        if found:
            typer.echo(f"anxin: {len(found)} differences from {expect}", err=True)
            raise typer.Exit(1)
        typer.echo(f"as expected by {expect}: {len(expected)} alerts", err=True)


def _replay_virtual(
    settings: Settings, file: Path, tick_s: float, keep_db: Path | None, *, in_memory: bool
) -> list[dict[str, Any]]:
    from datetime import timedelta

    from alerting.engine import RulesEngine
    from anxin.service import message_decoder
    from simulators.replay import VirtualReplay, copy_registry, named_devices

    decoder = message_decoder(settings)
    first = next((line.time for line in read_traffic(file)), None)
    if first is None:
        raise UserError(f"{file}: no traffic in it")
    try:
        device_ids, zigbee_names = named_devices(topics_of(file), decoder)
    except ValueError as exc:  # JSON errors: read_traffic names the line below
        list(read_traffic(file))
        raise UserError(f"{file}: {exc}") from exc
    url = f"sqlite:///{keep_db.resolve()}" if keep_db else "sqlite://"
    if keep_db is not None and keep_db.exists():
        raise UserError(f"{keep_db} exists: --keep-db wants a new file")
    source_engine, source = open_database(settings.database_url)
    target_engine, target = open_database(url)
    try:
        require_current_schema(source_engine)
        _fast_sqlite(target)
        upgrade(target_engine)
        copied = copy_registry(source, target, device_ids, zigbee_names, first)
        engine = RulesEngine(settings.rules, settings.catalogue)
        run = VirtualReplay(
            sessions=target,
            decoder=message_decoder(settings),
            engine=engine,
            catalogue=settings.catalogue,
            start=first,
            tick=timedelta(seconds=tick_s),
            max_batch=settings.ingest_max_batch,
            in_memory=in_memory,
        )
        report = run.run(read_traffic(file))
    finally:
        source_engine.dispose()
        target_engine.dispose()
    span = (report.last - first).total_seconds() if report.last else 0.0
    typer.echo(
        f"replayed {report.messages:,} messages ({span / 3600:.2f} h of traffic, "
        f"{copied:,} registered devices) in {report.wall_s:.1f} s: "
        f"{len(report.alerts)} alerts, {report.batches:,} batches, {report.ticks:,} ticks"
        f" ({report.passes:,} scheduler passes)",
        err=True,
    )
    return report.alerts


def _platform(api: str | None, user: str | None) -> PlatformApi | None:
    """The platform's HTTP API for `replay --api`: a token, or a login."""
    from simulators.replay_api import ApiError, PlatformApi

    if api is None:
        if user is not None:
            raise typer.BadParameter("--user goes with --api", param_hint="--user")
        return None
    try:
        if user is not None:
            password = os.environ.get("ANXIN_API_PASSWORD") or typer.prompt(
                f"password for {user}", hide_input=True
            )
            return PlatformApi.login(api, user, password)
    except ApiError as exc:
        raise UserError(str(exc)) from exc
    token = os.environ.get("ANXIN_API_TOKEN")
    if not token:
        raise UserError("--api needs a token: set ANXIN_API_TOKEN, or log in with --user NAME")
    return PlatformApi(api, token)


def _has_database(url: str) -> bool:
    """A database to read: any server's; a SQLite file only if it exists (replaying against a
    remote broker must not create an empty local one)."""
    if not url.startswith("sqlite"):
        return True
    path = url.split(":///", 1)[-1]
    return path not in ("", ":memory:") and Path(path).exists()


class _Sent:
    """Counts what is published, by the topic's kind (its last part)."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}

    def passing(self, lines: Iterable[TrafficLine]) -> Iterator[TrafficLine]:
        for line in lines:
            if isinstance(line, TrafficMessage):
                kind = line.topic.rsplit("/", 1)[-1]
                self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield line

    def describe(self) -> str:
        ranked = sorted(self.kinds.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{kind} {count:,}" for kind, count in ranked) or "nothing"


def _replay_live(
    settings: Settings,
    file: Path,
    speed: float,
    settle_s: float,
    platform: PlatformApi | None = None,
) -> list[dict[str, Any]]:
    from simulators.replay_api import ApiError
    from simulators.replay_live import ReplayError, connected_client, probe_topic, publish_traffic

    broker = settings.broker
    if broker is None:
        raise UserError("ANXIN_MQTT_URL is not set: which broker? (or replay --virtual)")
    reader: _AlertReader
    if platform is not None:
        reader = _ApiReader(platform)
    elif _has_database(settings.database_url):
        reader = _DatabaseReader(settings.database_url)
    else:
        reader = _NoReader()
    sent = _Sent()
    try:
        reader.before()
        try:
            client = connected_client(broker, f"anxin-replay-{int(time.time())}")
        except ReplayError as exc:
            raise UserError(str(exc)) from exc
        stop = threading.Event()
        probe = probe_topic(settings.mqtt_topic_prefix)
        try:
            started = time.monotonic()
            published = publish_traffic(
                sent.passing(read_traffic(file)), client, speed=speed, stop=stop
            )
            client.publish(probe, b"{}", qos=1).wait_for_publish(timeout=30)
        finally:
            client.disconnect()
            client.loop_stop()
        took = time.monotonic() - started
        if isinstance(reader, _NoReader):
            typer.echo(
                f"published {published:,} messages in {took:.1f} s ({sent.describe()}); no"
                " --api and no database: the alerts raised were not read",
                err=True,
            )
            return []
        deadline = time.monotonic() + settle_s
        while not reader.handled(probe):
            if time.monotonic() > deadline:
                raise UserError(f"ingest did not handle the replay within {settle_s:g} s")
            time.sleep(0.2)
        alerts = reader.after()
    except ApiError as exc:
        raise UserError(str(exc)) from exc
    finally:
        reader.close()
    typer.echo(
        f"published {published:,} messages in {took:.1f} s ({sent.describe()}): "
        f"{len(alerts)} alerts opened ({reader.source})",
        err=True,
    )
    return alerts


class _AlertReader:
    """Where `replay` learns what the platform raised: its database, or its HTTP API."""

    source = ""

    def before(self) -> None: ...

    def handled(self, probe: str) -> bool:
        return True

    def after(self) -> list[dict[str, Any]]:
        return []

    def close(self) -> None: ...


class _NoReader(_AlertReader):
    source = "not read"


class _DatabaseReader(_AlertReader):
    source = "read from the database"

    def __init__(self, url: str) -> None:
        self._engine, self._sessions = open_database(url)
        self._before = 0

    def before(self) -> None:
        require_current_schema(self._engine)
        with self._sessions() as session:
            self._before = session.scalar(select(func.max(AlertRow.id))) or 0

    def handled(self, probe: str) -> bool:
        from ingest.dead_letters import DeadLetterRow

        with self._sessions() as session:
            seen = session.scalar(
                select(DeadLetterRow.id).where(DeadLetterRow.topic == probe).limit(1)
            )
        return seen is not None

    def after(self) -> list[dict[str, Any]]:
        from simulators.replay import alerts_since

        return alerts_since(self._sessions, self._before)

    def close(self) -> None:
        self._engine.dispose()


class _ApiReader(_AlertReader):
    source = "read through the API"

    def __init__(self, platform: PlatformApi) -> None:
        self._platform = platform
        self._since = datetime.now(UTC)
        self._known: set[int] = set()

    def before(self) -> None:
        self._since = self._platform.server_time()
        self._known = self._platform.alert_ids_since(self._since)

    def handled(self, probe: str) -> bool:
        # The probe's topic is {prefix}/{device id}/heartbeat: its dead letter names the id.
        return self._platform.handled(probe.rsplit("/", 2)[-2])

    def after(self) -> list[dict[str, Any]]:
        return self._platform.alerts_since(self._since, self._known)

    def close(self) -> None:
        self._platform.close()


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
    app.command("simulate")(simulate)
    app.command("record")(record)


def simulate(
    ctx: typer.Context,
    devices: Annotated[
        int | None,
        typer.Option("--devices", min=1, max=200_000, help="Fleet size (default 100)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Comma-separated catalogue models (default: all)."),
    ] = None,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="A scenario file (docs/simulators.md).")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", min=0.001, help="Messages a second for the whole fleet (speeds time up)."
        ),
    ] = None,
    speed: Annotated[
        float | None, typer.Option("--speed", min=0.001, help="Virtual seconds per second.")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="How long: 90s, 2m, 24h, 1h30m, or a bare number of seconds (12) (live: wall"
            " time; --out: virtual).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Same seed, same traffic.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the traffic (JSON Lines) in virtual time; no broker."),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option("--registry", help="Write the fleet as CSV for `anxin devices import`."),
    ] = None,
    connections: Annotated[
        int,
        typer.Option(
            "--connections", min=0, max=1000, help="0: one per device; N: N shared connections."
        ),
    ] = 0,
    sos_resend: Annotated[
        float,
        typer.Option(
            "--sos-resend",
            min=0.1,
            max=3600,
            help="Seconds before an SOS without its Ack `received` is sent again (same seq).",
        ),
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="The summary as one JSON object.")
    ] = False,
    dc09: Annotated[
        str | None,
        typer.Option(
            "--dc09",
            help="HOST:PORT of a DC-09 receiver: the dc09-panel hubs (and protocol: dc09 "
            "groups) report there over SIA DC-09 instead of MQTT.",
        ),
    ] = None,
    dc09_key: Annotated[
        str | None, typer.Option("--dc09-key", help="Encrypt the hubs' frames with this key.")
    ] = None,
    dc09_key_encoding: Annotated[
        str, typer.Option("--dc09-key-encoding", help="text or hex.")
    ] = "text",
    dc09_udp: Annotated[bool, typer.Option("--dc09-udp", help="Over UDP (default TCP).")] = False,
    dc09_accounts: Annotated[
        Path | None,
        typer.Option(
            "--dc09-accounts", help="Write the receiver's accounts file (ANXIN_DC09_ACCOUNTS)."
        ),
    ] = None,
) -> None:
    """A virtual fleet: publish over MQTT, or write its traffic to a file (--out)."""
    from datetime import UTC, datetime, timedelta

    from anxin.logs import configure_logging
    from simulators.scenario import load_scenario, plain_scenario
    from simulators.virtual_devices import registry_csv, simple_fleet

    settings = _settings(ctx)
    configure_logging(settings.log_format, "warning")
    catalogue = settings.catalogue
    wanted = _duration(duration, "--duration")
    fleet: Scenario
    if scenario is not None:
        if devices is not None or models is not None:
            raise typer.BadParameter(
                "the scenario says what the fleet is", param_hint="--devices/--models"
            )
        try:
            fleet = load_scenario(scenario, catalogue)
        except ScenarioError as exc:
            raise UserError(str(exc)) from exc
        if seed is not None:
            fleet.seed = seed
    else:
        names = [n.strip() for n in (models or ",".join(catalogue)).split(",") if n.strip()]
        unknown = [n for n in names if n not in catalogue]
        if unknown or not names:
            raise typer.BadParameter(
                f"unknown model(s) {', '.join(unknown)} (known: {', '.join(catalogue)})",
                param_hint="--models",
            )
        if out is not None and wanted is None:
            raise typer.BadParameter("how much virtual time, e.g. 24h", param_hint="--duration")
        start = datetime.now(UTC).replace(microsecond=0)
        span = timedelta(seconds=wanted) if wanted and out is not None else timedelta(days=3650)
        fleet = plain_scenario(
            simple_fleet(devices or 100, [catalogue[n] for n in names]),
            seed or 12349,
            start,
            span,
        )
    if registry is not None:
        registry.write_text(registry_csv(fleet.devices), encoding="utf-8")
        typer.echo(
            f"{registry}: {len(fleet.devices):,} devices for `anxin devices import`", err=True
        )
    hubs = _dc09_hubs(fleet, dc09, dc09_key, dc09_key_encoding, dc09_udp, dc09_accounts)
    if out is not None:
        _write_traffic(fleet, out, wanted, settings.mqtt_topic_prefix, as_json)
        return
    _run_live(
        fleet,
        settings,
        rate=rate,
        speed=speed,
        duration_s=wanted,
        connections=connections,
        sos_resend_s=sos_resend,
        as_json=as_json,
        dc09=hubs,
    )


def _dc09_hubs(
    fleet: Scenario,
    address: str | None,
    key: str | None,
    key_encoding: str,
    udp: bool,
    accounts: Path | None,
) -> tuple[Any, list[Any]] | None:
    """(the target, the hubs) of `--dc09`; writes `--dc09-accounts`."""
    if address is None:
        if key is not None or accounts is not None or udp:
            raise typer.BadParameter("needs --dc09 HOST:PORT", param_hint="--dc09-…")
        return None
    from gateways.dc09.crypto import BadKeyError, KeyEncoding, decode_key
    from gateways.dc09.window import parse_listen
    from simulators.dc09_live import Dc09Target, accounts_toml, reports_over_dc09

    try:
        host, port = parse_listen(address)
        encoding = KeyEncoding(key_encoding)
        if key is not None:
            decode_key(key, encoding)
    except (ValueError, BadKeyError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--dc09/--dc09-key") from exc
    target = Dc09Target(
        host=host, port=port, transport="udp" if udp else "tcp", key=key, key_encoding=encoding
    )
    every_panel = not any(device.dc09 for device in fleet.devices)
    hubs = [d for d in fleet.devices if reports_over_dc09(d, every_panel)]
    if not hubs:
        raise UserError("--dc09: the fleet has no dc09-panel and no `protocol: dc09` group")
    if accounts is not None:
        accounts.write_text(accounts_toml(hubs, target), encoding="utf-8")
        typer.echo(f"{accounts}: {len(hubs):,} DC-09 accounts for ANXIN_DC09_ACCOUNTS", err=True)
    return target, hubs


def _write_traffic(
    fleet: Scenario, out: Path, duration_s: float | None, prefix: str, as_json: bool
) -> None:
    from datetime import timedelta

    from simulators.generate import scenario_traffic
    from simulators.traffic import TrafficWriter

    if duration_s is not None:
        fleet.end = min(fleet.end, fleet.start + timedelta(seconds=duration_s))
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    with out.open("w", encoding="utf-8") as handle:
        writer = TrafficWriter(handle)
        for line in scenario_traffic(fleet, prefix, counts):
            writer.write(line)
    summary: dict[str, Any] = {
        "devices": len(fleet.devices),
        "messages": sum(counts.values()),
        "by_kind": dict(sorted(counts.items())),
        "virtual_start": fleet.start.isoformat(),
        "virtual_end": fleet.end.isoformat(),
        "wall_s": round(time.perf_counter() - started, 3),
        "out": str(out),
    }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in summary["by_kind"].items())
    typer.echo(
        f"{out}: {summary['messages']:,} messages from {len(fleet.devices):,} devices, "
        f"{fleet.start.isoformat()} to {fleet.end.isoformat()} ({kinds}) "
        f"in {summary['wall_s']:.1f} s",
    )


def _run_live(
    fleet: Scenario,
    settings: Settings,
    *,
    rate: float | None,
    speed: float | None,
    duration_s: float | None,
    connections: int,
    sos_resend_s: float,
    as_json: bool,
    dc09: tuple[Any, list[Any]] | None = None,
) -> None:
    """Publish the fleet's traffic to the broker, with a progress display and a summary."""
    import asyncio

    from anxin.settings import listen_address
    from ingest.mqtt import BrokerAddress
    from simulators.live import LiveFleet, cpu_seconds, natural_rate, run_with_signals

    broker = settings.broker
    only_dc09 = dc09 is not None and len(dc09[1]) == len(fleet.devices)
    dc09_ids = {device.device_id for device in dc09[1]} if dc09 is not None else set()
    # Watches (protocol: watch) speak TCP to the watch gateway, dc09 devices to a receiver.
    no_mqtt = only_dc09 or all(d.watch or d.device_id in dc09_ids for d in fleet.devices)
    if broker is None and no_mqtt:
        broker = BrokerAddress(host="127.0.0.1", port=1883)  # no device of the fleet uses it
    if broker is None:
        raise UserError("ANXIN_MQTT_URL is not set: which broker? (or --out FILE)")
    # Watches (protocol: watch) connect to the watch gateway at ANXIN_WATCH_LISTEN.
    host, port = listen_address(settings.watch_listen)
    watch_gateway = ("127.0.0.1" if host in ("0.0.0.0", "::") else host, port)  # noqa: S104
    if rate is not None and speed is not None:
        raise typer.BadParameter("give --rate or --speed, not both", param_hint="--rate")
    if rate is not None:
        speed = rate / natural_rate(fleet)
    reporter = None
    if dc09 is not None:
        from simulators.dc09_live import Dc09Reporter

        reporter = Dc09Reporter(dc09[1], dc09[0])
    live = LiveFleet(
        fleet,
        broker,
        prefix=settings.mqtt_topic_prefix,
        connections=connections,
        speed=speed or 1.0,
        sos_resend_s=sos_resend_s,
        dc09=reporter,
        watch_gateway=watch_gateway,
    )
    display = _Progress(sys.stderr.isatty() and not as_json, live)
    cpu_before = cpu_seconds()
    started = time.monotonic()
    with display:
        interrupted = asyncio.run(run_with_signals(live, duration_s, display.show))
    wall_s = time.monotonic() - started
    counts = live.counts
    summary: dict[str, Any] = {
        "devices": len(fleet.devices),
        "connections": counts.links,
        "speed": round(live.speed, 3),
        "wall_s": round(wall_s, 2),
        "connect_s": round(counts.connect_s, 2),
        "publish_s": round(counts.publish_s, 2),
        "messages": counts.published,
        "msgs_per_s": (round(counts.published / counts.publish_s, 1) if counts.publish_s else None),
        "by_kind": dict(sorted(counts.by_kind.items())),
        "errors": dict(sorted(counts.errors.items())),
        # SOS sent again (same seq) until their Ack `received` came; still waiting at the end.
        "sos": {
            "answered": counts.sos_answered,
            "resent": counts.sos_resent,
            "unanswered": counts.sos_unanswered,
        },
        "cpu_s": round(cpu_seconds() - cpu_before, 2),
        "interrupted": interrupted,
    }
    if reporter is not None:
        summary["dc09"] = {
            "hubs": len(reporter.hubs),
            "frames": reporter.counts.sent,
            "replies": dict(sorted(reporter.counts.replies.items())),
            "resends": reporter.counts.resends,
            "unsaid": reporter.counts.unsaid,
        }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in summary["by_kind"].items())
    errors = ", ".join(f"{kind} ×{count:,}" for kind, count in summary["errors"].items())
    typer.echo(
        f"anxin simulate: {len(fleet.devices):,} devices over {counts.links:,} connections, "
        f"{wall_s:.1f} s at ×{live.speed:g}{' (interrupted)' if interrupted else ''} "
        f"(connecting {counts.connect_s:.1f} s, publishing {counts.publish_s:.1f} s)\n"
        f"  messages  {counts.published:,} ({summary['msgs_per_s'] or 0:,.0f}/s): "
        f"{kinds or 'none'}\n"
        f"  errors    {errors or 'none'}\n"
        f"  sos       answered {counts.sos_answered:,}, resent {counts.sos_resent:,}, "
        f"unanswered {counts.sos_unanswered:,}\n"
        + (f"  dc09      {json.dumps(summary['dc09'])}\n" if reporter is not None else "")
        + f"  cpu       {summary['cpu_s']:.1f} s in this process"
    )


class _Progress:
    """A live line on a terminal (rich, as `anxin bench` draws): what has been sent so far."""

    def __init__(self, enabled: bool, live: LiveFleet) -> None:
        self._fleet = live
        self._live: Any = None
        self._last = (0.0, 0)
        if enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), auto_refresh=False, transient=True)

    def __enter__(self) -> _Progress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, elapsed: float) -> None:
        if self._live is None:
            return
        from rich.text import Text

        counts = self._fleet.counts
        then, sent = self._last
        rate = (counts.published - sent) / (elapsed - then) if elapsed > then else 0.0
        self._last = (elapsed, counts.published)
        virtual = counts.virtual_now.isoformat(timespec="seconds") if counts.virtual_now else "-"
        kinds = "  ".join(f"{k} {v:,}" for k, v in counts.by_kind.most_common(6))
        errors = sum(counts.errors.values())
        self._live.update(
            Text.assemble(
                (f"{elapsed:7.1f} s", "bold"),
                f"  connected {counts.connected:,}/{counts.links:,}  sent {counts.published:,}"
                f" ({rate:,.0f}/s)  virtual {virtual}  errors {errors}\n  {kinds}\n",
                ("Ctrl-C stops the fleet", "dim"),
            ),
            refresh=True,
        )


def record(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="The traffic file to write (JSON Lines).")],
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="A topic filter (repeatable); default: what ingest reads."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration", help="Stop after this long: 90s, 5m …, or a bare number of seconds."
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after this many messages.")
    ] = None,
) -> None:
    """Subscribe to the broker and write what arrives as JSON Lines, until Ctrl-C."""
    import os
    import signal

    from anxin.service import message_decoder
    from simulators.recorder import Recorder
    from simulators.traffic import TrafficWriter

    settings = _settings(ctx)
    broker = settings.broker
    if broker is None:
        raise UserError("ANXIN_MQTT_URL is not set: which broker?")
    topics = topic or message_decoder(settings).subscriptions()
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with out.open("w", encoding="utf-8") as handle:
            recorder = Recorder(
                broker,
                topics,
                TrafficWriter(handle),
                client_id=f"anxin-record-{os.getpid()}",
                max_messages=count,
            )
            try:
                recorder.start()
            except OSError as exc:
                raise UserError(
                    f"cannot reach the broker {broker.host}:{broker.port}: {exc}"
                ) from exc
            if recorder.subscribed.wait(10):
                typer.echo(f"recording {', '.join(topics)} to {out}; Ctrl-C stops", err=True)
            counts = recorder.run(stop, _duration(duration, "--duration"))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    qos = ", ".join(f"QoS {q}: {n:,}" for q, n in sorted(counts.by_qos.items()))
    typer.echo(
        f"{out}: {counts.messages:,} messages ({qos or 'none'}; {counts.retained:,} retained, "
        f"{counts.binary:,} not UTF-8), {counts.link_changes} link changes"
    )
