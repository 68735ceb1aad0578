"""The gateway process roles (``anxin gateway watch``, ``anxin gateway dc09``).

A gateway is its device protocol's server plus its own broker connection (``GatewayLink``),
and the same ``/healthz``, ``/readyz`` and ``/metrics`` as every other role, on
``ANXIN_API_HOST:ANXIN_API_PORT``. It needs no database: everything it hears goes to the
broker in the contract, and from there through the one path in.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog
import uvicorn
from fastapi import FastAPI, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from anxin.service import _EmbeddedServer, _listen, mqtt_protocol
from anxin.settings import ConfigError, Settings
from devices.topics import Downlink
from gateways.link import GatewayLink, LinkOptions
from ingest.mqtt import BrokerAddress

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], bool]


class GatewayServer(Protocol):
    """A device protocol's server, built on the gateway's link."""

    async def serve(self, stop: asyncio.Event) -> None:
        """Bind the listeners (a bind error: ConfigError), serve until ``stop``, close them."""

    def on_downlink(self, device_id: str, kind: Downlink, payload: bytes) -> None:
        """An Ack or a Command from anxin for ``device_id`` (any device's: keep yours)."""

    def readiness(self) -> Mapping[str, ReadinessCheck]:
        """Checks for /readyz beside the broker's, e.g. {"listener": ...}."""


async def run_gateway(
    settings: Settings,
    name: str,
    broker: BrokerAddress,
    build: Callable[[GatewayLink], GatewayServer],
    *,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run the gateway ``name`` until SIGINT or SIGTERM."""
    link = GatewayLink(
        broker,
        LinkOptions(
            client_id=f"{settings.mqtt_client_id[:56]}-{name}",
            topic_prefix=settings.mqtt_topic_prefix,
            protocol=mqtt_protocol(settings),
        ),
        name=name,
    )
    server = build(link)
    link.on_downlink = server.on_downlink
    readiness: dict[str, ReadinessCheck] = {"broker": lambda: link.connected}
    readiness.update(server.readiness())
    listener = _listen(settings.api_host, settings.api_port)
    health = _EmbeddedServer(
        uvicorn.Config(
            health_app(name, readiness),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("gateway.starting", gateway=name, broker=f"{broker.host}:{broker.port}")
    try:
        await _serve(name, link, server, health, listener, stop, on_ready)
    except* ConfigError as errors:  # a listener that cannot bind: one clear line, not a trace
        raise errors.exceptions[0] from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("gateway.stopped", gateway=name)


async def _serve(
    name: str,
    link: GatewayLink,
    server: GatewayServer,
    health: uvicorn.Server,
    listener: socket.socket,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None,
) -> None:
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(link.run(stop), name=f"{name}-broker")
            tasks.create_task(server.serve(stop), name=f"{name}-server")
            tasks.create_task(health.serve(sockets=[listener]), name=f"{name}-health")
            await _wait_started(health, link, stop)
            if on_ready is not None and not stop.is_set():
                on_ready()
            await stop.wait()
            log.info("gateway.stopping", gateway=name)
            health.should_exit = True
    finally:
        stop.set()  # whatever ended it (a failed task too): the others stop as well


def health_app(name: str, readiness: Mapping[str, ReadinessCheck]) -> FastAPI:
    """/healthz, /readyz and /metrics, as the other roles' health-only servers answer them."""
    app = FastAPI(title=f"anxin gateway {name}", version="1")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks = {check: _safe(probe) for check, probe in readiness.items()}
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _safe(probe: ReadinessCheck) -> bool:
    try:
        return bool(probe())
    except Exception:  # a failing check means "not ready", never a 500
        return False


async def _wait_started(health: uvicorn.Server, link: GatewayLink, stop: asyncio.Event) -> None:
    """Until the health server listens and the broker answered (or 10 s, or we are stopping)."""
    deadline = asyncio.get_running_loop().time() + 10
    while not stop.is_set():
        if health.started and link.connected:
            return
        if health.started and asyncio.get_running_loop().time() > deadline:
            log.warning("gateway.broker_not_connected_yet", note="retrying in the background")
            return
        await asyncio.sleep(0.05)
