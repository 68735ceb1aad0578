"""The process roles: ingest and API, together (``serve``) or one by one."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
import uvicorn
from paho.mqtt.enums import MQTTProtocolVersion
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.escalation import Escalator
from alerting.feed import AlertFeed
from alerting.notifiers import Channel, GatewayNotifier, Notifier, WebhookNotifier, load_gateway
from alerting.outbox import OutboxWorker
from alerting.scheduler import Scheduler
from alerting.visit_planner import VisitPlanner
from anxin.database import database_reachable, open_database, require_current_schema
from anxin.leader import run_when_leader
from anxin.memtrace import memory_trace
from anxin.native_memory import export_native_memory
from anxin.secrets import token_secret
from anxin.settings import ConfigError, Settings
from anxin.telemetry import telemetry_store, telemetry_writer
from api.app import create_app
from api.deps import ApiContext, ReadinessCheck
from api.downlink import DeviceDownlink, MqttDownlink
from api.streaming import StreamSettings, TimelineWatch
from api.tokens import TokenService
from devices.clock import Clock, system_clock
from devices.codec import NativeCodec
from ingest.decoding import MessageDecoder
from ingest.mqtt import BrokerAddress, MqttConnection, SessionOptions
from ingest.pipeline import IngestPipeline
from ingest.publisher import BrokerPublisher, PublisherOptions
from ingest.pulse import keep_pulse
from ingest.service import IngestService
from ingest.takeover import Members, TakeoverOptions
from ingest.telemetry.ports import TelemetryReader
from ingest.telemetry.writer import TelemetryWriter

log = structlog.get_logger(__name__)

# Extra work to run beside the service (the demo's simulated fleet), given a stop signal.
Companion = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Roles:
    ingest: bool = True
    api: bool = True
    scheduler: bool = True


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: we handle the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def message_decoder(settings: Settings) -> MessageDecoder:
    return MessageDecoder(
        native=NativeCodec(settings.mqtt_topic_prefix),
        zigbee_base_topic=settings.zigbee2mqtt_base_topic or None,
        catalogue=settings.catalogue,
    )


def shared(settings: Settings, filters: list[str]) -> list[str]:
    """Several ingest processes split the messages through an MQTT 5 shared subscription."""
    if settings.mqtt_shared_group:
        return [f"$share/{settings.mqtt_shared_group}/{f}" for f in filters]
    return filters


def mqtt_protocol(settings: Settings) -> MQTTProtocolVersion:
    return (
        MQTTProtocolVersion.MQTTv5
        if settings.mqtt_protocol == "5"
        else MQTTProtocolVersion.MQTTv311
    )


def broker_connection(
    settings: Settings, broker: BrokerAddress, clock: Clock, subscriptions: list[str]
) -> MqttConnection:
    options = SessionOptions(
        client_id=settings.mqtt_client_id,
        subscriptions=shared(settings, subscriptions),
        protocol=mqtt_protocol(settings),
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
    """Run until SIGINT or SIGTERM, then stop: the batch under way is committed and acked."""
    broker = broker or settings.broker
    if roles.ingest and broker is None:
        raise ConfigError("ANXIN_MQTT_URL is not set (only `anxin demo` embeds a broker)")
    trace = memory_trace(settings.var_dir, settings.debug_tracemalloc_frames)
    engine, sessions = open_database(settings.database_url)
    # Reads and the readiness check (for the roles that use telemetry); the writer has a
    # client of its own, on its thread.
    telemetry = telemetry_store(settings) if roles.ingest or roles.api else None
    try:
        await asyncio.to_thread(require_current_schema, engine)
        # Everything that can fail on bad configuration fails here, before any task starts.
        feed = AlertFeed()
        streams = TimelineWatch(stream_settings(settings))
        readiness: dict[str, ReadinessCheck] = {"database": lambda: database_reachable(engine)}
        connection = ingest = server = listener = publisher = None
        members: Members | None = None
        writer: TelemetryWriter | None = None
        if telemetry is not None:
            readiness["telemetry"] = telemetry.ping
        if broker is not None and roles.ingest:
            decoder = message_decoder(settings)
            connection = broker_connection(settings, broker, clock, decoder.subscriptions())
            readiness["broker"] = lambda: connection.connected if connection else False
            sink = telemetry_store(settings)
            writer = telemetry_writer(settings, sink) if sink is not None else None
            ingest = ingest_service(settings, connection, decoder, sessions, feed, clock, writer)
            members = ingest_members(
                settings, engine, broker, connection, sessions, feed, clock, writer
            )
        if roles.api:
            # Acks and Commands go out on ingest's connection; an API-only process gets a
            # publisher of its own on ANXIN_MQTT_DOWNLINK_URL (its own account). Without one:
            # actions work, the devices are not told.
            downlink: MqttDownlink | None = None
            if connection is not None:
                up = connection
                downlink = MqttDownlink(
                    up.publish, settings.mqtt_topic_prefix, lambda: up.connected
                )
            elif (account := settings.downlink_broker) is not None:
                own = publisher = downlink_publisher(settings, account)
                readiness["broker"] = lambda: own.connected
                downlink = MqttDownlink(own.publish, settings.mqtt_topic_prefix)
            server = _api_server(
                settings, sessions, feed, readiness, clock, downlink, telemetry, streams=streams
            )
        else:
            # Ingest or scheduler alone: health, readiness and metrics on the same port.
            server = _api_server(
                settings,
                sessions,
                feed,
                readiness,
                clock,
                None,
                None,
                streams=streams,
                health_only=True,
            )
        listener = _listen(settings.api_host, settings.api_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if trace is not None:
            loop.add_signal_handler(signal.SIGUSR1, trace.snapshot)
        export_native_memory(malloc=settings.debug_malloc_metrics)
        settle_heap()
        if writer is not None:
            writer.start()
        if publisher is not None:
            publisher.start()  # connects in paho's thread
        try:
            async with asyncio.TaskGroup() as tasks:
                if connection is not None and ingest is not None:
                    await connection.start()
                    tasks.create_task(ingest.run(), name="ingest")
                    tasks.create_task(
                        keep_pulse(sessions, connection, clock, stop), name="ingest-pulse"
                    )
                    if members is not None:
                        tasks.create_task(members.run(stop), name="ingest-members")
                if roles.scheduler:
                    tasks.create_task(
                        run_when_leader(
                            engine, scheduler_role(settings, sessions, feed, clock), stop
                        ),
                        name="scheduler",
                    )
                if server is not None and listener is not None:
                    tasks.create_task(server.serve(sockets=[listener]), name="api")
                if companion is not None:
                    tasks.create_task(companion(stop), name="companion")
                await _wait_started(server, connection, stop)
                if on_ready is not None and not stop.is_set():
                    on_ready()
                await stop.wait()
                log.info("service.stopping")
                if ingest is not None:
                    ingest.stop()
                if server is not None:
                    streams.close()  # open alert streams end, so the server can stop
                    server.should_exit = True
        finally:
            if connection is not None:
                await connection.stop()
            if writer is not None:
                # After ingest stopped: what is still in memory is written, or spooled.
                # (Its thread may be in a request: wait out the request's timeout.)
                await asyncio.to_thread(writer.stop, settings.influx_timeout_s + 5)
            if publisher is not None:
                await asyncio.to_thread(publisher.stop)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
                loop.remove_signal_handler(signum)
    finally:
        engine.dispose()
        if telemetry is not None:
            telemetry.close()
    log.info("service.stopped")


def downlink_publisher(settings: Settings, broker: BrokerAddress) -> BrokerPublisher:
    """The API role's own publish-only connection: its own broker account
    (ANXIN_MQTT_DOWNLINK_URL), ingest's protocol, its own client id."""
    return BrokerPublisher(
        broker,
        PublisherOptions(
            client_id=f"{settings.mqtt_client_id[:60]}-api", protocol=mqtt_protocol(settings)
        ),
    )


def notifiers(settings: Settings) -> dict[Channel, Notifier]:
    """The configured notification channels: the webhook for the supervisors, and for the
    contacts the SMS/voice gateway if one is named, else the webhook too."""
    channels: dict[Channel, Notifier] = {}
    if settings.notify_webhook_url is not None:
        secret = settings.notify_webhook_secret
        webhook = WebhookNotifier(
            settings.notify_webhook_url,
            secret=secret.get_secret_value() if secret is not None else None,
            timeout_s=settings.notify_webhook_timeout_s,
        )
        channels[Channel.SUPERVISORS] = channels[Channel.CONTACTS] = webhook
    if settings.notify_contact_gateway is not None:
        try:
            gateway = load_gateway(settings.notify_contact_gateway)
        except Exception as exc:  # the operator's code: say which setting, in one line
            raise ConfigError(f"ANXIN_NOTIFY_CONTACT_GATEWAY: {exc}") from exc
        channels[Channel.CONTACTS] = GatewayNotifier(gateway)
    return channels


def scheduler_role(
    settings: Settings, sessions: sessionmaker[Session], feed: AlertFeed, clock: Clock
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """The leader's work: the time rules (with escalation) and the notification outbox, side
    by side, so a slow webhook never holds up a deadline."""
    rules = settings.rules
    channels = notifiers(settings)
    scheduler = Scheduler(
        sessions=sessions,
        engine=RulesEngine(rules, settings.catalogue),
        catalogue=settings.catalogue,
        clock=clock,
        feed=feed,
        escalator=Escalator(
            escalation=rules.escalation, notify=rules.notify, channels=frozenset(channels)
        ),
        visits=VisitPlanner(rules.visits, channels=frozenset(channels)),
    )
    outbox = OutboxWorker(
        sessions=sessions, notifiers=channels, rule=rules.notify, clock=clock, feed=feed
    )

    async def lead(stop: asyncio.Event) -> None:
        log.info("scheduler.notify_channels", channels=sorted(c.value for c in channels))
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(scheduler.run(stop), name="scheduler-steps")
            tasks.create_task(outbox.run(stop), name="notification-outbox")

    return lead


def settle_heap() -> None:
    """Take what start-up built (modules, models, the app: some 130 000 objects) out of the
    garbage collector's way. A full collection scans them all otherwise, and stops ingest for
    ~100 ms on a small machine: an SOS arriving then waits as long. They live as long as the
    process anyway."""
    gc.collect()
    gc.freeze()


def _listen(host: str, port: int) -> socket.socket:
    """Bind the API's socket ourselves, so a port in use is a clear error, not a crash."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when
    # the socket says it is TCP, and without it every keep-alive response waits ~40 ms.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


async def _wait_started(
    server: uvicorn.Server | None, connection: MqttConnection | None, stop: asyncio.Event
) -> None:
    """Until the API listens and the broker answered (or 10 s passed, or we are stopping)."""
    # uvicorn and paho offer flags, not events, so look at them now and then.
    deadline = asyncio.get_running_loop().time() + 10
    while not stop.is_set():
        api_up = server is None or server.started
        broker_up = connection is None or connection.connected
        if api_up and broker_up:
            return
        if api_up and asyncio.get_running_loop().time() > deadline:
            log.warning("mqtt.not_connected_yet", note="retrying in the background")
            return
        await asyncio.sleep(0.05)


def ingest_service(
    settings: Settings,
    connection: MqttConnection,
    decoder: MessageDecoder,
    sessions: sessionmaker[Session],
    feed: AlertFeed,
    clock: Clock,
    telemetry: TelemetryWriter | None = None,
    downlink: MqttConnection | None = None,
) -> IngestService:
    pipeline = IngestPipeline(
        sessions=sessions,
        decoder=decoder,
        engine=RulesEngine(settings.rules, settings.catalogue),
        clock=clock,
        telemetry_points=telemetry is not None,
    )
    return IngestService(
        connection=connection,
        pipeline=pipeline,
        feed=feed,
        topic_prefix=settings.mqtt_topic_prefix,
        max_batch=settings.ingest_max_batch,
        telemetry=telemetry.submit if telemetry is not None else None,
        downlink=downlink,
    )


def ingest_members(
    settings: Settings,
    engine: Engine,
    broker: BrokerAddress,
    connection: MqttConnection,
    sessions: sessionmaker[Session],
    feed: AlertFeed,
    clock: Clock,
    telemetry: TelemetryWriter | None,
) -> Members | None:
    """Members sharing the uplinks drain a dead member's session: on PostgreSQL, with a
    shared group (SQLite is one process on one host)."""
    if engine.dialect.name != "postgresql" or not settings.mqtt_shared_group:
        return None

    def drain_service(takeover: MqttConnection) -> IngestService:
        # A pipeline of its own; the devices' Acks leave on the member's own connection.
        return ingest_service(
            settings, takeover, message_decoder(settings), sessions, feed, clock, telemetry,
            downlink=connection,
        )  # fmt: skip

    return Members(
        engine=engine,
        broker=broker,
        session=connection.options,
        drain_service=drain_service,
        options=TakeoverOptions(grace_s=settings.ingest_takeover_grace_s),
        clock=clock,
    )


def stream_settings(settings: Settings) -> StreamSettings:
    return StreamSettings(
        keepalive_s=settings.sse_keepalive_s,
        poll_s=settings.sse_poll_s,
        max_streams=settings.sse_max_streams,
        backlog=settings.sse_backlog,
    )


def _api_server(
    settings: Settings,
    sessions: sessionmaker[Session],
    feed: AlertFeed,
    readiness: dict[str, ReadinessCheck],
    clock: Clock,
    downlink: DeviceDownlink | None,
    telemetry: TelemetryReader | None,
    *,
    streams: TimelineWatch,
    health_only: bool = False,
) -> uvicorn.Server:
    tokens = TokenService(
        token_secret(settings), lifetime=timedelta(hours=settings.token_lifetime_hours)
    )
    context = ApiContext(
        sessions=sessions,
        tokens=tokens,
        feed=feed,
        clock=clock,
        readiness=readiness,
        advisory_checks=frozenset({"telemetry"}),
        catalogue=settings.catalogue,
        downlink=downlink,
        telemetry=telemetry,
        streams=streams,
        visit_followup_due=settings.rules.visits.followup_due,
    )
    config = uvicorn.Config(
        create_app(context, health_only=health_only),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        lifespan="off",
        # Streams end on stop (streams.close()); this bounds any other slow response.
        timeout_graceful_shutdown=5,
    )
    return _EmbeddedServer(config)
