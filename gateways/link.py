"""A gateway's own broker connection: the contract's uplinks out, Acks and Commands in.

A gateway (the 4G watch's TCP protocol, SIA DC-09) translates a device's frames into the MQTT
contract and publishes them as a device of our own would. Its reply to the device is the same
promise as our PUBACK, so it is given only once the message is safe:

- ``publish`` returns once the broker has PUBACKed the message (QoS 1): the broker holds it for
  ingest, in ingest's persistent session;
- ``publish_sos`` returns once anxin's Ack ``received`` with the SOS's ``seq`` is back, that is
  once the alert is stored in SQL.

Until then the caller does not answer the device, so the device's own resend covers every
outage in between. Nothing is queued for a reconnect: a publish while the broker is away raises
at once (``LinkUnavailableError``), and the device, unanswered, sends again.

Many watches publish at once, so the link keeps at most ``max_in_flight`` heartbeats and
readings waiting for their PUBACK; the rest wait for a place here, in order. That bound is ours,
not paho's: past paho's (20 by default) messages queue inside paho, behind which an SOS waits
too, and where the PUBACK timeout counts the queue and cannot tell it from a slow broker; and
paho's bound costs a walk over every message in flight at each PUBACK, so it is off. aiomqtt's
bookkeeping costs O(pending) per publish (a warning logged past 10 of them): kept small by
the bound too. Alarms (SOS, events) skip the wait and go on the wire at once: an SOS never
waits behind heartbeats.

The connection is aiomqtt over paho, on the event loop; it keeps no session at the broker
(``clean_start``): an Ack that arrives while the gateway is away is answered again when the
device resends its SOS (ingest Acks every redelivery). It subscribes to every device's ``ack``
and ``cmd`` (``{prefix}/+/ack``, ``{prefix}/+/cmd``) and hands each to ``on_downlink``; the
gateway keeps what is for the devices connected to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.enums import MQTTProtocolVersion
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from devices.payloads import AckPayload, AckStatus
from devices.topics import DEFAULT_PREFIX, DEVICE_ID_PATTERN, Downlink, Uplink, uplink_topic
from ingest.mqtt import BrokerAddress

log = structlog.get_logger(__name__)

BROKER_CONNECTED = Gauge(
    "anxin_gateway_broker_connected", "1 while the gateway is connected to the broker", ["gateway"]
)
PUBLISHED = Counter(
    "anxin_gateway_published_total",
    "Contract messages the broker PUBACKed, by uplink kind",
    ["gateway", "kind"],
)
PUBLISH_FAILURES = Counter(
    "anxin_gateway_publish_failures_total",
    "Contract messages the broker did not take (not connected, or no PUBACK in time)",
    ["gateway"],
)
ACKS_WAITING = Gauge(
    "anxin_gateway_acks_waiting", "SOS messages waiting for anxin's Ack received", ["gateway"]
)
ACKS_WAITED = Counter(
    "anxin_gateway_acks_waited_total",
    "SOS messages waited on for anxin's Ack received, by outcome",
    ["gateway", "outcome"],
)
DOWNLINKS = Counter(
    "anxin_gateway_downlinks_total", "Acks and Commands heard from anxin", ["gateway", "kind"]
)

# (device_id, Downlink.ACK | Downlink.CMD, payload): called on the event loop.
DownlinkHandler = Callable[[str, Downlink, bytes], None]


# They skip the wait for a place among max_in_flight (module docstring).
ALARMS = frozenset({Uplink.SOS, Uplink.EVENT})


class LinkUnavailableError(ConnectionError):
    """The broker did not take the message: not connected, or no PUBACK in time."""


class AckTimeoutError(TimeoutError):
    """The broker took the SOS, but anxin's Ack ``received`` did not come back in time."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkOptions:
    client_id: str
    topic_prefix: str = DEFAULT_PREFIX
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    keepalive_s: int = 30
    # How long a publish waits for the broker's PUBACK (loopback or LAN: milliseconds).
    puback_timeout_s: float = 5.0
    # Heartbeats and readings waiting for their PUBACK at once (module docstring); keep the
    # broker's max_inflight_messages (its MQTT v5 Receive Maximum) above it, with room for the
    # alarms (deploy/mosquitto.conf: 2000).
    max_in_flight: int = 500
    # Seconds between connection attempts: doubling from the first to the second, jittered.
    reconnect_delay_s: tuple[float, float] = (0.5, 10.0)


class GatewayLink:
    """QoS 1 uplinks with a PUBACK to show for each, and the Acks they earn."""

    def __init__(self, broker: BrokerAddress, options: LinkOptions, *, name: str) -> None:
        self._broker, self._options, self._name = broker, options, name
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        # (device_id, seq) → futures resolved by the Ack `received` that echoes that seq.
        self._waiting: dict[tuple[str, int], list[asyncio.Future[AckPayload]]] = {}
        self.on_downlink: DownlinkHandler | None = None
        self._in_flight = asyncio.Semaphore(options.max_in_flight)
        self._published = {kind: PUBLISHED.labels(name, kind.value) for kind in Uplink}
        self._acks_waiting = ACKS_WAITING.labels(name)
        self._broker_connected = BROKER_CONNECTED.labels(name)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def acks_waiting(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within_s)
        return self.connected

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop``: subscribe, hand on downlinks, reconnect with backoff."""
        failures = 0
        while not stop.is_set():
            try:
                async with self._make_client() as client:
                    await self._subscribe(client)
                    self._client = client
                    self._connected.set()
                    self._broker_connected.set(1)
                    failures = 0
                    log.info("gateway.broker_connected", gateway=self._name)
                    await _until_stopped(self._listen(client), stop)
            except aiomqtt.MqttError as error:
                failures += 1
                log.warning("gateway.broker_unavailable", gateway=self._name, error=str(error))
            finally:
                self._set_down()
            if not stop.is_set():
                await _until_stopped(asyncio.sleep(self._backoff_s(failures)), stop)

    async def publish(self, device_id: str, kind: Uplink, payload: bytes) -> None:
        """Hand the message to the broker (QoS 1, not retained); returns once it is PUBACKed.
        A heartbeat or reading first waits for a place among ``max_in_flight``; an alarm not."""
        if kind in ALARMS:
            await self._publish(device_id, kind, payload)
            return
        async with self._in_flight:
            await self._publish(device_id, kind, payload)

    async def _publish(self, device_id: str, kind: Uplink, payload: bytes) -> None:
        client = self._client
        topic = uplink_topic(device_id, kind, self._options.topic_prefix)
        if client is None or not self.connected:
            PUBLISH_FAILURES.labels(self._name).inc()
            raise LinkUnavailableError("not connected to the broker")
        try:
            await client.publish(topic, payload, qos=1, timeout=self._options.puback_timeout_s)
        except aiomqtt.MqttError as error:
            PUBLISH_FAILURES.labels(self._name).inc()
            raise LinkUnavailableError(f"the broker did not take it: {error}") from error
        self._published[kind].inc()

    async def publish_sos(
        self, device_id: str, payload: bytes, *, seq: int, within_s: float
    ) -> AckPayload:
        """Publish an SOS (whose payload carries ``seq``) and wait until anxin has stored it:
        its Ack ``received`` echoing ``seq``. Raises LinkUnavailableError or AckTimeoutError."""
        key = (device_id, seq)
        future: asyncio.Future[AckPayload] = asyncio.get_running_loop().create_future()
        # Waiting before publishing: the Ack may come back before publish() returns.
        self._waiting.setdefault(key, []).append(future)
        self._acks_waiting.inc()
        outcome = "unavailable"
        try:
            await self.publish(device_id, Uplink.SOS, payload)
            outcome = "timeout"
            try:
                ack = await asyncio.wait_for(future, within_s)
            except TimeoutError as error:
                raise AckTimeoutError(f"no Ack received within {within_s} s") from error
            outcome = "received"
            return ack
        finally:
            ACKS_WAITED.labels(self._name, outcome).inc()
            self._acks_waiting.dec()
            futures = self._waiting.get(key, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(key, None)

    def _make_client(self) -> aiomqtt.Client:
        options, broker = self._options, self._broker
        v5 = options.protocol is MQTTProtocolVersion.MQTTv5
        client = aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=options.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True,
            clean_start=True,
            keepalive=options.keepalive_s,
            timeout=options.puback_timeout_s,
            tls_params=aiomqtt.TLSParameters() if broker.tls else None,
            max_inflight_messages=0,  # no bound in paho: ours (module docstring)
        )
        # Its warning is for publishes that pile up unbounded; ours are bounded (above).
        client.pending_calls_threshold = 2 * options.max_in_flight
        return client

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        prefix = self._options.topic_prefix
        await client.subscribe([(f"{prefix}/+/{kind.value}", 1) for kind in Downlink])

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes):
                self._downlink(message.topic.value, payload)

    def _downlink(self, topic: str, payload: bytes) -> None:
        parts = topic.removeprefix(self._options.topic_prefix + "/").split("/")
        if len(parts) != 2 or not DEVICE_ID_PATTERN.fullmatch(parts[0]):
            return
        try:
            device_id, kind = parts[0], Downlink(parts[1])
        except ValueError:
            return
        DOWNLINKS.labels(self._name, kind.value).inc()
        if kind is Downlink.ACK:
            self._ack_heard(device_id, payload)
        if self.on_downlink is not None:
            try:
                self.on_downlink(device_id, kind, payload)
            except Exception:  # one device's downlink never stops the others'
                log.exception("gateway.downlink_failed", gateway=self._name, kind=kind.value)

    def _ack_heard(self, device_id: str, payload: bytes) -> None:
        try:
            ack = AckPayload.model_validate_json(payload)
        except ValidationError:
            log.warning("gateway.ack_unreadable", gateway=self._name)
            return
        if ack.status is not AckStatus.RECEIVED or ack.seq is None:
            return
        for future in self._waiting.get((device_id, ack.seq), []):
            if not future.done():
                future.set_result(ack)

    def _set_down(self) -> None:
        self._client = None
        self._connected.clear()
        self._broker_connected.set(0)

    def _backoff_s(self, failures: int) -> float:
        first, ceiling = self._options.reconnect_delay_s
        delay = min(ceiling, first * 2 ** min(failures, 10))
        return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto


async def _until_stopped(work: Coroutine[Any, Any, object], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set, whichever is first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
    finally:
        for pending in (task, stopped):
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
