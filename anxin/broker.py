"""The embedded MQTT broker (amqtt) that ``anxin demo`` runs when no broker is configured."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

from amqtt.broker import Broker

from ingest.mqtt import BrokerAddress


def free_port(host: str = "127.0.0.1", preferred: int = 1883) -> int:
    """``preferred`` if nothing listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            bound: int = probe.getsockname()[1]
            return bound
    raise OSError("no free TCP port")


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[BrokerAddress]:
    """An in-process MQTT 3.1.1 broker on ``host`` (loopback by default), anonymous access."""
    port = port or free_port(host)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield BrokerAddress(host=host, port=port)
    finally:
        await broker.shutdown()
