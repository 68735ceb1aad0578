"""The broker connection: paho-mqtt with manual acknowledgement, handing batches to asyncio.

paho's own network thread reads and parses; messages land in a bounded inbox that the ingest
pipeline drains in batches. QoS 1 messages are PUBACKed only when the pipeline says they are
stored (``ack``), so a crash before the commit means the broker delivers them again.
We use paho directly rather than aiomqtt because aiomqtt does not expose manual
acknowledgement, and paho's receive path is the faster of the two.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.clock import Clock, system_clock
from ingest import metrics

log = structlog.get_logger(__name__)


class MqttUrlError(ValueError):
    """The broker URL is not ``mqtt://[user:pass@]host[:port]`` (or ``mqtts://``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise MqttUrlError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme!r}")
        if not parts.hostname:
            raise MqttUrlError("no host in the broker URL")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise MqttUrlError(str(exc)) from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    # Which connection delivered it: an ack on a later connection would name the wrong message.
    connection: int
    received_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionOptions:
    client_id: str
    subscriptions: Sequence[str]
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    keepalive_s: int = 30
    # How long the broker keeps our session (and queues QoS 1 messages) while we are away.
    session_expiry_s: int = 7 * 24 * 3600
    # QoS 1 messages the broker may have in flight to us before our acks (MQTT 5).
    receive_maximum: int = 2000
    inbox_limit: int = 100_000


class MqttConnection:
    """A persistent MQTT session that delivers batches and acknowledges on request."""

    def __init__(self, broker: BrokerAddress, options: SessionOptions, clock: Clock = system_clock):
        self._broker, self._options, self._clock = broker, options, clock
        self._inbox: deque[Delivery] = deque()
        self._waiting = False
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection = 0
        self._connected = threading.Event()
        self._client = self._make_client()
        metrics.INBOX_DEPTH.set_function(lambda: len(self._inbox))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _make_client(self) -> paho.Client:
        options = self._options
        v5 = options.protocol is MQTTProtocolVersion.MQTTv5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=options.protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self._broker.username:
            client.username_pw_set(self._broker.username, self._broker.password)
        if self._broker.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)
        # A bad message must never stop paho's network thread.
        client.suppress_exceptions = True
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    async def start(self) -> None:
        """Connect in paho's thread, which reconnects by itself with backoff."""
        self._loop = asyncio.get_running_loop()
        options = self._options
        properties = None
        if options.protocol is MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = options.session_expiry_s
            properties.ReceiveMaximum = options.receive_maximum
        kwargs: dict[str, Any] = {"keepalive": options.keepalive_s, "properties": properties}
        if options.protocol is MQTTProtocolVersion.MQTTv5:
            kwargs["clean_start"] = False
        self._client.connect_async(self._broker.host, self._broker.port, **kwargs)
        self._client.loop_start()
        log.info("mqtt.connecting", host=self._broker.host, port=self._broker.port)

    async def stop(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected.clear()
        metrics.MQTT_CONNECTED.set(0)

    async def wait_connected(self, within_s: float) -> bool:
        return await asyncio.to_thread(self._connected.wait, within_s)

    async def next_batch(self, max_messages: int) -> list[Delivery]:
        """Wait for a message (or ``interrupt``), then take up to ``max_messages`` at once."""
        if not self._inbox:
            self._wakeup.clear()
            self._waiting = True
            if not self._inbox:  # re-checked: it may have arrived before the flag was up
                await self._wakeup.wait()
            self._waiting = False
        count = min(max_messages, len(self._inbox))
        return [self._inbox.popleft() for _ in range(count)]

    def interrupt(self) -> None:
        """Wake ``next_batch`` with nothing, so its caller can see it should stop."""
        self._wakeup.set()

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """PUBACK what is stored; deliveries of an earlier connection will come again."""
        current = self._connection
        for delivery in deliveries:
            if delivery.qos > 0 and delivery.connection == current:
                self._client.ack(delivery.mid, delivery.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)

    # paho's thread from here on

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("mqtt.connect_refused", reason=str(reason))
            return
        self._connection += 1
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # PUBACKs and Acks are small writes in a row: without this, Nagle's algorithm
            # holds each one back until the last is acknowledged (tens of ms on loopback).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(topic, 1) for topic in self._options.subscriptions])
        self._connected.set()
        metrics.MQTT_CONNECTED.set(1)
        log.info("mqtt.connected", host=self._broker.host, port=self._broker.port)

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        log.warning("mqtt.connect_failed", host=self._broker.host, port=self._broker.port)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connected.clear()
        metrics.MQTT_CONNECTED.set(0)
        log.warning("mqtt.disconnected", reason=str(reason))

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        # Topics are UTF-8 by the MQTT spec; a broken one is kept readable for the dead letters.
        topic = bytes(message._topic).decode("utf-8", "replace")
        if (
            message.qos == 0
            and len(self._inbox) >= self._options.inbox_limit
            and not topic.endswith("/sos")
        ):
            # Only QoS 0 can be shed (never an SOS); QoS 1 is bounded by the in-flight window.
            metrics.INBOX_DROPPED.inc()
            return
        self._inbox.append(
            Delivery(
                topic=topic,
                payload=bytes(message.payload),
                qos=message.qos,
                retain=bool(message.retain),
                mid=message.mid,
                connection=self._connection,
                received_at=self._clock(),
            )
        )
        if self._waiting and self._loop is not None:
            self._waiting = False
            self._loop.call_soon_threadsafe(self._wakeup.set)
