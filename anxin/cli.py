"""The ``anxin`` command line (contract §3)."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from anxin.database import SchemaNotCurrentError, open_database, upgrade
from anxin.logs import configure_logging
from anxin.settings import ConfigError, Settings, load_settings
from api.users import Role, UserError, save_user

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
    """Ingest, rules and API in one process."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=True, api=True)))


@app.command()
def ingest(ctx: typer.Context) -> None:
    """Only the MQTT ingest (several may share the broker's load with ANXIN_MQTT_SHARED_GROUP)."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=True, api=False)))


@app.command()
def api(ctx: typer.Context) -> None:
    """Only the HTTP API."""
    from anxin.service import Roles, run_service

    asyncio.run(run_service(_settings(ctx), Roles(ingest=False, api=True)))


@app.command()
def demo(ctx: typer.Context) -> None:
    """The whole system on embedded defaults with a small simulated fleet."""
    from anxin.demo import run_demo

    asyncio.run(run_demo(_settings(ctx)))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema."""
    engine, _ = open_database(_settings(ctx).database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    typer.echo("database schema is up to date")


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
