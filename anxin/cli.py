"""The ``anxin`` command line (contract §3)."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from anxin import traffic_cli
from anxin.database import (
    SchemaNotCurrentError,
    open_database,
    require_current_schema,
    upgrade,
)
from anxin.logs import configure_logging
from anxin.settings import ConfigError, Settings, load_settings
from api.users import Role, UserError, save_user
from simulators import bench_same_work
from simulators.bench import bench_app

app = typer.Typer(
    name="anxin",
    help="安心 anxin: the IoT backend of elderly emergency (12349) hotlines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The SQL database.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the API and console.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
devices_app = typer.Typer(help="Devices and their broker credentials.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
dead_letters_app = typer.Typer(help="Messages that could not be used.", no_args_is_help=True)
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(bench_app, name="bench")
bench_same_work.register(bench_app)
gateway_app = typer.Typer(
    help="Gateways: device protocols other than MQTT, into the MQTT contract.",
    no_args_is_help=True,
)
app.add_typer(gateway_app, name="gateway")
traffic_cli.register(app)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML file of settings; ANXIN_* variables win over it."),
]


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.callback()
def _main(ctx: typer.Context, config: ConfigOption = None) -> None:
    settings = load_settings(config)
    configure_logging(settings.log_format, settings.log_level)
    ctx.obj = settings


@app.command()
def serve(ctx: typer.Context) -> None:
    """Ingest, rules, scheduler and API in one process."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=True, api=True, scheduler=True)))


@app.command()
def ingest(ctx: typer.Context) -> None:
    """Only the MQTT ingest (several may share the broker's load with ANXIN_MQTT_SHARED_GROUP)."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=True, api=False, scheduler=False)))


@app.command()
def api(ctx: typer.Context) -> None:
    """Only the HTTP API."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=False, api=True, scheduler=False)))


@app.command()
def scheduler(ctx: typer.Context) -> None:
    """Only the time rules (device offline; one leader at a time on PostgreSQL)."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=False, api=False, scheduler=True)))


@app.command()
def demo(ctx: typer.Context) -> None:
    """The whole system on embedded defaults with a small simulated fleet."""
    from anxin.demo import run_demo

    asyncio.run(run_demo(_settings(ctx)))


@gateway_app.command("watch")
def gateway_watch(ctx: typer.Context) -> None:
    """The 4G watch gateway: watches' TCP protocol on ANXIN_WATCH_LISTEN, into the MQTT
    contract on ANXIN_WATCH_MQTT_URL (docs/watch-gateway.md)."""
    from anxin.gateway import run_gateway
    from gateways.watch.server import WatchServer, options_from

    settings = _settings(ctx)
    broker = settings.watch_broker
    if broker is None:
        raise ConfigError("anxin gateway watch needs ANXIN_WATCH_MQTT_URL (its broker account)")
    options = options_from(settings)
    asyncio.run(run_gateway(settings, "watch", broker, lambda link: WatchServer(link, options)))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema; with ANXIN_INFLUX_DB, also the InfluxDB database and its
    retention policy (ANXIN_INFLUX_RETENTION_DAYS)."""
    settings = _settings(ctx)
    engine, _ = open_database(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    typer.echo("database schema is up to date")
    _set_up_influx(settings)


def _set_up_influx(settings: Settings) -> None:
    from anxin.telemetry import telemetry_store
    from ingest.telemetry.ports import TelemetryStoreError
    from ingest.telemetry.sink_v1 import InfluxV1

    store = telemetry_store(settings)
    if store is None:
        typer.echo("telemetry: no InfluxDB configured (ANXIN_INFLUX_URL), nothing to set up")
        return
    try:
        if not isinstance(store, InfluxV1):
            # The v2 API creates buckets with an all-access token, which anxin should not hold.
            typer.echo(
                f"InfluxDB v2: create the bucket yourself if it does not exist: influx bucket "
                f"create --name {settings.influx_bucket} --org {settings.influx_org} "
                f"--retention {settings.influx_retention_days}d"
            )
            return
        typer.echo(store.create_database(settings.influx_retention_days))
    except TelemetryStoreError as exc:
        print(f"anxin: cannot set up InfluxDB: {exc}", file=sys.stderr)
        raise typer.Exit(1) from exc
    finally:
        store.close()


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")],
    scope: Annotated[
        str, typer.Option(help="Community tiers the user sees, e.g. 张家口市/张北县; all if empty.")
    ] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user, or reset an existing user's password, role and scope."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the passwords differ")
    else:
        raise UserError("no terminal to ask for a password: use --password-stdin")
    engine, sessions = open_database(_settings(ctx).database_url)
    try:
        upgrade(engine)
        with sessions.begin() as session:
            save_user(session, name, password, role, scope)
    finally:
        engine.dispose()
    typer.echo(f"user {name} saved ({role.value})")


@devices_app.command("provision")
def devices_provision(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Folder of the files, e.g. /etc/mosquitto/anxin.")
    ],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="New passwords for every device, not only new ones.")
    ] = False,
    platform_user: Annotated[
        str, typer.Option("--platform-user", help="The platform's broker account.")
    ] = "anxin",
    platform_password_stdin: Annotated[
        bool,
        typer.Option(
            "--platform-password-stdin",
            help="Read the platform's password from standard input (else kept or generated).",
        ),
    ] = False,
    member: Annotated[
        list[str] | None,
        typer.Option(
            "--member",
            help="An ingest member's account, on the platform listener (repeatable; kept).",
        ),
    ] = None,
    api_user: Annotated[
        list[str] | None,
        typer.Option(
            "--api-user",
            help="An API replica's downlink account, on the platform listener (repeatable).",
        ),
    ] = None,
    gateway_user: Annotated[
        list[str] | None,
        typer.Option(
            "--gateway-user", help="A gateway's account, beside the devices (repeatable)."
        ),
    ] = None,
    drop_service: Annotated[
        list[str] | None,
        typer.Option("--drop-service", help="Remove this service account (repeatable)."),
    ] = None,
) -> None:
    """Write Mosquitto's password files and ACLs for the registered devices and anxin's own
    processes (docs/provisioning.md)."""
    from devices.provision import (
        ProvisionError,
        provision,
        registered_device_ids,
        summary,
        warnings,
    )
    from devices.service_accounts import ServiceAccount, ServiceRole

    services = [
        ServiceAccount(username=name, role=role)
        for names, role in (
            (member, ServiceRole.MEMBER),
            (api_user, ServiceRole.API),
            (gateway_user, ServiceRole.GATEWAY),
        )
        for name in names or ()
    ]

    settings = _settings(ctx)
    password = sys.stdin.readline().rstrip("\r\n") if platform_password_stdin else None
    engine, sessions = open_database(settings.database_url)
    try:
        upgrade(engine)
        with sessions() as session:
            device_ids = registered_device_ids(session)
    finally:
        engine.dispose()
    try:
        done, written = provision(
            out,
            device_ids,
            platform_user=platform_user,
            platform_password=password,
            rotate=rotate,
            prefix=settings.mqtt_topic_prefix,
            zigbee_base=settings.zigbee2mqtt_base_topic or None,
            services=services,
            drop_services=drop_service or [],
        )
    except ProvisionError as exc:
        print(f"anxin: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    for line in warnings(done):
        typer.echo(f"anxin: warning: {line}", err=True)
    for line in summary(done, written, out):
        typer.echo(line)


@devices_app.command("import")
def devices_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV, UTF-8 (or GB18030), columns in docs.")],
) -> None:
    """Create or update elders, contacts and devices from a spreadsheet; bad rows are listed."""
    from devices.csv_import import CsvFormatError, import_csv

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from exc
    settings = _settings(ctx)
    engine, sessions = open_database(settings.database_url)
    try:
        upgrade(engine)
        with sessions.begin() as session:
            report = import_csv(session, data, settings.catalogue.keys())
    except CsvFormatError as exc:
        raise UserError(f"{file}: {exc}") from exc
    finally:
        engine.dispose()
    typer.echo(
        f"{file}: {report.rows} rows imported ({report.encoding}); "
        f"elders {report.elders_created} new, {report.elders_updated} updated; "
        f"devices {report.devices_created} new, {report.devices_updated} updated; "
        f"{report.contacts_added} contacts added"
    )
    for warning in report.warnings:
        typer.echo(f"{file}:{warning.line}: warning: {warning.message}", err=True)
    for error in report.errors:
        typer.echo(f"{file}:{error.line}: {error.message}", err=True)
    if report.warnings:
        rows = len({w.line for w in report.warnings})
        typer.echo(f"{rows} rows imported with warnings (what was left out, above)", err=True)
    if report.errors:
        typer.echo(f"{len(report.errors)} rows not imported", err=True)
        raise typer.Exit(1)


@dead_letters_app.command("list")
def dead_letters_list(
    ctx: typer.Context,
    device: Annotated[str | None, typer.Option(help="Only this device's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """The newest dead letters: when, topic, reason, and the payload (cut short)."""
    from sqlalchemy import select

    from ingest.dead_letters import DeadLetterRow

    engine, sessions = open_database(_settings(ctx).database_url)
    try:
        require_current_schema(engine)
        with sessions() as session:
            query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
            if device is not None:
                query = query.where(DeadLetterRow.device_id == device)
            rows = list(session.scalars(query))
    finally:
        engine.dispose()
    for row in rows:
        payload = row.payload[:80].decode("utf-8", "backslashreplace")
        when = row.received_at.isoformat(timespec="seconds")
        typer.echo(f"{when}  {row.topic}  {row.reason}  {payload!r}")
    if not rows:
        typer.echo("no dead letters")


@gateway_app.command("dc09")
def gateway_dc09(ctx: typer.Context) -> None:
    """The SIA DC-09 receiver: alarm panels and telecare hubs over TCP and UDP."""
    from gateways.dc09.role import run_dc09

    asyncio.run(run_dc09(_settings(ctx)))


def main() -> None:
    """Console entry point: configuration and usage errors are one clear line, exit code 2."""
    try:
        app()
    except ConfigError as exc:
        print(f"anxin: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (UserError, SchemaNotCurrentError) as exc:
        print(f"anxin: {exc}", file=sys.stderr)
        sys.exit(2)
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        print(f"anxin: cannot use the database: {reason}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
