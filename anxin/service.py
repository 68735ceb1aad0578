"""The process roles: ingest and API, together (``serve``) or one by one."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
import uvicorn
from paho.mqtt.enums import MQTTProtocolVersion
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.feed import AlertFeed
from anxin.database import database_reachable, open_database
from anxin.secrets import token_secret
from anxin.settings import ConfigError, Settings
from api.app import create_app
from api.deps import ApiContext, ReadinessCheck
from api.tokens import TokenService
from devices.clock import Clock, system_clock
from devices.codec import NativeCodec
from devices.topics import uplink_filters
from ingest.mqtt import BrokerAddress, MqttConnection, SessionOptions
from ingest.pipeline import IngestPipeline, IngestService

log = structlog.get_logger(__name__)

# Extra work to run beside the service (the demo's simulated fleet), given a stop signal.
Companion = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Roles:
    ingest: bool = True
    api: bool = True


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: we handle the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def subscriptions(settings: Settings) -> list[str]:
    filters = uplink_filters(settings.mqtt_topic_prefix)
    if settings.mqtt_shared_group:
        return [f"$share/{settings.mqtt_shared_group}/{f}" for f in filters]
    return filters


def broker_connection(settings: Settings, broker: BrokerAddress, clock: Clock) -> MqttConnection:
    protocol = (
        MQTTProtocolVersion.MQTTv5
        if settings.mqtt_protocol == "5"
        else MQTTProtocolVersion.MQTTv311
    )
    options = SessionOptions(
        client_id=settings.mqtt_client_id,
        subscriptions=subscriptions(settings),
        protocol=protocol,
        receive_maximum=settings.mqtt_receive_maximum,
    )
    return MqttConnection(broker, options, clock)


async def run_service(
    settings: Settings,
    roles: Roles,
    *,
    broker: BrokerAddress | None = None,
    companion: Companion | None = None,
    on_ready: Callable[[], None] | None = None,
    clock: Clock = system_clock,
) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly: nothing stored is left unacknowledged."""
    broker = broker or settings.broker
    if roles.ingest and broker is None:
        raise ConfigError("ANXIN_MQTT_URL is not set (only `anxin demo` embeds a broker)")
    engine, sessions = open_database(settings.database_url)
    feed = AlertFeed()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    readiness: dict[str, ReadinessCheck] = {"database": lambda: database_reachable(engine)}
    connection = None
    if broker is not None and roles.ingest:
        connection = broker_connection(settings, broker, clock)
        readiness["broker"] = lambda: connection.connected if connection else False
    try:
        async with asyncio.TaskGroup() as tasks:
            if connection is not None:
                await connection.start()
                ingest = _ingest_service(settings, connection, sessions, feed, clock)
                tasks.create_task(_until(stop, ingest.run()), name="ingest")
            server = None
            if roles.api:
                listener = _listen(settings.api_host, settings.api_port)
                server = _api_server(settings, engine, sessions, feed, readiness, clock)
                tasks.create_task(server.serve(sockets=[listener]), name="api")
            if companion is not None:
                tasks.create_task(companion(stop), name="companion")
            await _wait_started(server, connection)
            if on_ready is not None:
                on_ready()
            await stop.wait()
            log.info("service.stopping")
            if server is not None:
                server.should_exit = True
    finally:
        if connection is not None:
            await connection.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        engine.dispose()
        log.info("service.stopped")


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket ourselves, so a port in use is a clear error, not a crash."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


async def _until(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run ``work`` until ``stop`` is set, then cancel it."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _wait_started(server: uvicorn.Server | None, connection: MqttConnection | None) -> None:
    # uvicorn offers `started` only as a flag, so look at it now and then.
    while server is not None and not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if connection is not None and not await connection.wait_connected(within_s=10):
        log.warning("mqtt.not_connected_yet", note="retrying in the background")


def _ingest_service(
    settings: Settings,
    connection: MqttConnection,
    sessions: sessionmaker[Session],
    feed: AlertFeed,
    clock: Clock,
) -> IngestService:
    pipeline = IngestPipeline(
        sessions=sessions,
        codec=NativeCodec(settings.mqtt_topic_prefix),
        engine=RulesEngine(),
        clock=clock,
    )
    return IngestService(
        connection=connection,
        pipeline=pipeline,
        feed=feed,
        topic_prefix=settings.mqtt_topic_prefix,
        max_batch=settings.ingest_max_batch,
    )


def _api_server(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    feed: AlertFeed,
    readiness: dict[str, ReadinessCheck],
    clock: Clock,
) -> uvicorn.Server:
    tokens = TokenService(
        token_secret(settings), lifetime=timedelta(hours=settings.token_lifetime_hours)
    )
    context = ApiContext(
        sessions=sessions, tokens=tokens, feed=feed, clock=clock, readiness=readiness
    )
    config = uvicorn.Config(
        create_app(context),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    return _EmbeddedServer(config)
