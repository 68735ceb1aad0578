"""A publish-only broker connection, for a process that runs the API without ingest.

``anxin serve`` sends Acks and Commands on ingest's connection. An ``anxin api`` process has no
ingest, so it gets this small one: plain paho-mqtt in paho's own network thread, reconnecting
with backoff, subscribing to nothing and keeping no session (it only publishes; nothing waits
for it at the broker while it is away).

``publish`` is synchronous and waits for the broker's PUBACK, a short time at most: the API's
routes are synchronous (they run in worker threads, never on the event loop), and a PUBACK is
the only proof that the broker has the message. Without the wait, a message written into a
connection that died a moment ago (the broker stopped, the network cut, not yet noticed by the
keepalive) would be reported as sent while nobody has it. When the broker is not connected the
publish fails at once rather than queueing for a reconnect that may never come: the caller
records that the device was not told (an Ack) or answers 503 (a Command).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter, Gauge

from ingest.mqtt import BrokerAddress

log = structlog.get_logger(__name__)

PUBLISHER_CONNECTED = Gauge(
    "anxin_downlink_connected", "1 while the API's own publisher is connected to the broker"
)
PUBLISH_FAILURES = Counter(
    "anxin_downlink_publish_failures_total",
    "Downlink messages the API's own publisher could not hand to the broker",
)


class BrokerUnavailableError(ConnectionError):
    """The broker did not take the message: not connected, or no PUBACK in time."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PublisherOptions:
    client_id: str
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    keepalive_s: int = 30
    # Seconds between connection attempts: doubling from the first to the second.
    reconnect_delay_s: tuple[int, int] = (1, 30)
    # How long a publish waits for the broker's PUBACK (loopback or LAN: milliseconds).
    puback_timeout_s: float = 2.0
    # Messages at most awaiting their PUBACK at once; more are refused, not queued.
    max_in_flight: int = 100


class BrokerPublisher:
    """QoS 1 publications with a PUBACK to show for each. Thread-safe; ``start`` once."""

    def __init__(self, broker: BrokerAddress, options: PublisherOptions) -> None:
        self._broker, self._options = broker, options
        self._connected = threading.Event()
        self._stopping = False
        v5 = options.protocol is MQTTProtocolVersion.MQTTv5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=options.protocol,
            clean_session=None if v5 else True,
        )
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set()
        # paho's queue counts the messages in flight too: with both limits equal, nothing
        # waits behind the window, and a publish beyond it is refused (bounded).
        client.max_inflight_messages_set(options.max_in_flight)
        client.max_queued_messages_set(options.max_in_flight)
        client.reconnect_delay_set(*options.reconnect_delay_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in paho's thread, and again (with backoff) whenever the connection is lost."""
        options = self._options
        connect: dict[str, Any] = {"keepalive": options.keepalive_s}
        if options.protocol is MQTTProtocolVersion.MQTTv5:
            connect["clean_start"] = True
        log.info("downlink.connecting", host=self._broker.host, port=self._broker.port)
        self._client.connect_async(self._broker.host, self._broker.port, **connect)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._set_down()

    def wait_connected(self, within_s: float) -> bool:
        return self._connected.wait(within_s)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Hand the message to the broker; raises BrokerUnavailableError if it did not take it."""
        if not self.connected:
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError("not connected to the broker")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError(
                f"the broker did not take it: {paho.error_string(info.rc)}"
            )
        if qos == 0:
            return
        timeout = self._options.puback_timeout_s
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError(str(exc)) from exc
        if not info.is_published():
            # paho may still deliver it after a reconnect: the caller says "not told", which
            # errs on the side of a dispatcher calling the elder back.
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError(f"no PUBACK within {timeout:g} s")

    # paho's callbacks, in paho's thread

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("downlink.connect_refused", reason=str(reason))
            return
        self._connected.set()
        PUBLISHER_CONNECTED.set(1)
        log.info("downlink.connected", host=self._broker.host, port=self._broker.port)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if self.connected and not self._stopping:
            log.warning("downlink.disconnected", reason=str(reason))
        self._set_down()

    def _set_down(self) -> None:
        self._connected.clear()
        PUBLISHER_CONNECTED.set(0)
