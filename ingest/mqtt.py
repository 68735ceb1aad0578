"""The broker connection: paho-mqtt driven by the asyncio loop, with manual acknowledgement.

paho runs no thread of its own here. Its socket is registered with the event loop (as
aiomqtt and paho's ``examples/loop_asyncio.py`` do); when it is readable, the loop reads it
dry, many packets per wake-up, and each PUBLISH becomes a ``Delivery`` in a bounded inbox that
the ingest service drains in batches. Two things make that read cheap:

- **One ``recv`` for many packets.** paho asks the socket for one byte (the packet type), then
  one per byte of the remaining length, then the rest: three system calls or more per message,
  each a moment without the interpreter lock that another thread may keep for up to the
  switch interval. ``_BulkClient`` serves those requests from a buffer filled by one ``recv``
  of up to ``READ_SIZE`` bytes.
- **A lean PUBLISH decode.** We need a PUBLISH's topic, payload, QoS, retain flag and packet
  id. paho also builds an ``MQTTMessage`` and, over MQTT 5, a ``Properties`` object per message,
  matches the topic against its per-filter callbacks and takes locks. ``_BulkClient`` reads
  those five fields straight from the buffer, for every whole PUBLISH in it, and hands them over.

And a batch's PUBACKs leave in one write (``_BulkClient.puback``), not one each.

This replaces private methods of ``paho.mqtt.client.Client`` (``_sock_recv``, ``_packet_read``,
``_handle_publish``) and uses one (``_packet_queue``), checked on import: with a paho that lacks
them, plain paho is used and only the speed differs (``FAST_PATH``). Everything else (CONNECT
and its properties, SUBSCRIBE, keepalive, our own QoS 1 publications and their resending after a
reconnect, TLS) is paho's.

QoS 1 messages are PUBACKed only when the pipeline says they are stored (``ack``), so a crash
before the commit means the broker delivers them again. paho's network calls all run on the
event loop's thread, except the blocking (re)connect, which runs in a worker thread while the
loop leaves the client alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MessageType, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.clock import Clock, system_clock
from ingest import metrics

log = structlog.get_logger(__name__)

# One recv() takes up to this much: some 600 heartbeats of 100 bytes.
READ_SIZE = 64 * 1024
# At most this many packets in one turn of the event loop; the rest is read in the next, so
# that the ingest task, the API and timers are not kept waiting by a long backlog.
PACKETS_PER_TURN = 2000
# paho's loop_misc (keepalive, PINGREQ) this often.
MISC_EVERY_S = 1.0

# The private methods of paho's Client that _BulkClient replaces or uses: written against
# paho-mqtt 2.2 (tested), and read against 2.1's source.
FAST_PATH = all(
    callable(getattr(paho.Client, name, None))
    for name in ("_sock_recv", "_packet_read", "_handle_publish", "_packet_queue")
)

_PUBACK = struct.Struct("!BBH")

# A PUBLISH as _BulkClient hands it over: topic, payload, QoS, retain, packet id.
PublishHandler = Callable[[bytes, bytes, int, bool, int], None]


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


# Not frozen: one is made per message, and a frozen dataclass's __init__ costs three times
# as much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
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
    # Seconds between two connection attempts: doubling from the first to the second.
    # At most 5 s: back within seconds of a long cut-off (fault 6); a refused attempt is cheap.
    reconnect_delay_s: tuple[float, float] = (1.0, 5.0)
    # Resume another member's session to drain it (ingest/takeover.py): on connecting,
    # unsubscribe ``subscriptions`` (the session has them) rather than subscribe, so that only
    # what was already queued or in flight for it comes; one connection, never a reconnect.
    takeover: bool = False


class MalformedPublishError(ValueError):
    """A PUBLISH packet shorter than its own lengths say."""


def decode_publish(
    header: int, packet: bytes | bytearray, mqtt5: bool, start: int = 0, stop: int | None = None
) -> tuple[bytes, bytes, int, bool, int]:
    """Topic, payload, QoS, retain and packet id of the PUBLISH in ``packet[start:stop]`` (what
    follows the fixed header). MQTT 5 properties are skipped: we ask for none (no topic aliases,
    so a topic is never empty), and none changes what we store."""
    stop = len(packet) if stop is None else stop
    qos = (header & 0x06) >> 1
    try:
        end = start + 2 + ((packet[start] << 8) | packet[start + 1])
        topic = bytes(packet[start + 2 : end])
        mid = 0
        if qos:
            mid = (packet[end] << 8) | packet[end + 1]
            end += 2
        if mqtt5:
            length, shift = 0, 0
            while True:
                byte = packet[end]
                end += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise MalformedPublishError("properties length over 4 bytes")
            end += length
    except IndexError as exc:
        raise MalformedPublishError("PUBLISH shorter than its lengths") from exc
    if end > stop or not topic:
        raise MalformedPublishError("PUBLISH shorter than its lengths, or without a topic")
    return topic, bytes(packet[end:stop]), qos, bool(header & 0x01), mid


class _BulkClient(paho.Client):
    """paho's client, reading the socket in bulk and PUBLISH packets the short way.

    ``_sock_recv`` serves paho's small reads from a buffer that one ``recv`` fills.
    ``_packet_read`` takes every whole QoS 0 or 1 PUBLISH at the head of that buffer at once
    and hands it over; any other packet, or one cut by the end of the buffer, goes paho's way
    (where ``_handle_publish`` decodes a PUBLISH the short way too).
    """

    def __init__(
        self,
        *args: Any,
        on_publish_packet: PublishHandler,
        on_read: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_publish_packet, self._on_read = on_publish_packet, on_read
        self._mqtt5 = self._protocol == MQTTProtocolVersion.MQTTv5
        self._inbound = b""
        self._inbound_at = 0
        self._inbound_socket: object = None
        # Set when a read found the socket empty: the loop may wait for it to be readable.
        self.drained = False
        # PUBLISH packets _packet_read may still take before it returns to the loop.
        self.budget = PACKETS_PER_TURN

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._sock
        if sock is not self._inbound_socket:  # a new connection: nothing left of the old
            self._inbound, self._inbound_at, self._inbound_socket = b"", 0, sock
        at = self._inbound_at
        if at >= len(self._inbound):
            try:
                data = super()._sock_recv(READ_SIZE)
            except BlockingIOError:
                self.drained = True
                raise
            if not data:
                return data  # the broker closed the connection
            self._inbound, at = data, 0
            self._on_read()
        chunk = self._inbound[at : at + bufsize]
        self._inbound_at = at + len(chunk)
        return chunk

    def _packet_read(self) -> MQTTErrorCode:
        if (
            self._in_packet["command"] == 0  # not halfway through a packet paho's way
            and self._inbound_socket is self._sock
            and self._read_publishes()
        ):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_read()

    def _read_publishes(self) -> int:
        """Deliver the whole QoS 0/1 PUBLISH packets at the head of the buffer; how many."""
        data, at, size = self._inbound, self._inbound_at, len(self._inbound)
        mqtt5, deliver = self._mqtt5, self._on_publish_packet
        taken, budget = 0, self.budget
        while at < size and taken < budget:
            header = data[at]
            if header & 0xF0 != 0x30 or header & 0x06 > 0x02:
                break  # not a PUBLISH, or QoS 2 (or invalid): paho's way
            length, shift, pos = 0, 0, at + 1
            while pos < size and shift <= 21:
                byte = data[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            else:
                break  # the length is cut by the end of the buffer (or too long): paho's way
            end = pos + length
            if end > size:
                break  # the packet is cut by the end of the buffer
            try:
                topic, payload, qos, retain, mid = decode_publish(header, data, mqtt5, pos, end)
            except MalformedPublishError:
                break  # paho's way, which refuses it
            at = end
            taken += 1
            self._inbound_at = at
            try:
                deliver(topic, payload, qos, retain, mid)
            except Exception:
                # A bug of ours: the message is lost here, but the stream goes on.
                log.exception("mqtt.delivery_failed", topic=topic.decode("utf-8", "replace"))
        if taken:
            self.budget -= taken
            with self._msgtime_mutex:  # for the keepalive: the broker is there
                now = time.monotonic()
                self._last_bytes_received = now  # paho 2.2
                self._last_msg_in = now  # paho 2.1
        return taken

    def puback(self, mids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages, in one write rather than one each.

        What paho's ``ack(mid, 1)`` sends (``0x40 0x02`` and the packet id: over MQTT 5 too, the
        reason code "success" may be left out), queued as one block of bytes.
        """
        if mids:
            block = b"".join([_PUBACK.pack(0x40, 2, mid) for mid in mids])
            self._packet_queue(MessageType.PUBACK, block, 0, 0)

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        if header & 0x06 == 0x04:  # QoS 2: we never subscribe for it; paho's way
            return super()._handle_publish()
        try:
            topic, payload, qos, retain, mid = decode_publish(
                header, self._in_packet["packet"], self._mqtt5
            )
        except MalformedPublishError as error:
            log.error("mqtt.malformed_packet", error=str(error))
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        try:
            self._on_publish_packet(topic, payload, qos, retain, mid)
        except Exception:
            # A bug of ours must not leave paho halfway through a packet.
            log.exception("mqtt.delivery_failed", topic=topic.decode("utf-8", "replace"))
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class MqttConnection:
    """A persistent MQTT session that delivers batches and acknowledges on request.

    Its methods are called on the event loop's thread, but for ``publish`` and ``connected``,
    which any thread may use (the API's synchronous routes run in worker threads).
    """

    def __init__(self, broker: BrokerAddress, options: SessionOptions, clock: Clock = system_clock):
        self._broker, self._options, self._clock = broker, options, clock
        self._inbox: deque[Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._up = asyncio.Event()  # connected and subscribed
        self._closed = asyncio.Event()  # the socket was closed
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._misc: asyncio.TimerHandle | None = None
        self._read_scheduled = False
        self._fd: int | None = None  # the socket's descriptor while the loop watches it
        self._writing = False
        # A (re)connect is under way in a worker thread: the loop leaves paho alone meanwhile.
        self._connecting = False
        self._deferred: list[tuple[str, bytes, int, bool]] = []
        self._connection = 0
        self._connected = False
        self._came_up = False  # the current connection got as far as its SUBACK
        self._received_at = clock()
        # When a message last came in or was acknowledged (monotonic): a drain ends after quiet.
        self.last_activity = time.monotonic()
        self._client = self._make_client()
        metrics.INBOX_DEPTH.set_function(lambda: len(self._inbox))

    @property
    def options(self) -> SessionOptions:
        return self._options

    @property
    def connected(self) -> bool:
        """Connected, and the subscriptions are in place."""
        return self._connected

    def _make_client(self) -> paho.Client:
        options = self._options
        v5 = options.protocol is MQTTProtocolVersion.MQTTv5
        client_options: dict[str, Any] = {
            "client_id": options.client_id,
            "protocol": options.protocol,
            "clean_session": None if v5 else False,
            "manual_ack": True,
        }
        client: paho.Client
        if FAST_PATH:
            client = _BulkClient(
                CallbackAPIVersion.VERSION2,
                on_publish_packet=self._received,
                on_read=self._on_read,
                **client_options,
            )
        else:
            client = paho.Client(CallbackAPIVersion.VERSION2, **client_options)
            client.on_message = self._on_message
        if self._broker.username:
            client.username_pw_set(self._broker.username, self._broker.password)
        if self._broker.tls:
            client.tls_set()
        client.max_queued_messages_set(0)
        # A bad message must never stop the connection.
        client.suppress_exceptions = True
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_subscribe
        client.on_socket_close = self._on_socket_close
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = options.session_expiry_s
            properties.ReceiveMaximum = options.receive_maximum
        connect: dict[str, Any] = {"keepalive": options.keepalive_s, "properties": properties}
        if v5:
            connect["clean_start"] = False
        # Only records where to connect; the connecting is done by _keep_connected.
        client.connect_async(self._broker.host, self._broker.port, **connect)
        return client

    async def start(self) -> None:
        """Connect in the background, and again whenever the connection is lost."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping.clear()
        log.info("mqtt.connecting", host=self._broker.host, port=self._broker.port)
        self._supervisor = self._loop.create_task(self._keep_connected(), name="mqtt")

    @property
    def pending(self) -> int:
        """Deliveries received and not yet taken by ``next_batch``."""
        return len(self._inbox)

    @property
    def closed(self) -> bool:
        """The connection ended (a takeover's one connection: drained, or taken back)."""
        return self._closed.is_set() and not self._connecting

    async def stop(self, *, end_session: bool = False) -> None:
        """Disconnect normally: the broker keeps the session and what was not acknowledged.

        ``end_session`` (MQTT 5): the broker drops the session instead (a drained takeover).
        """
        self._stopping.set()
        if self._supervisor is not None:
            # It ends at once, unless a connect is under way in a thread (5 s at most).
            await asyncio.wait([self._supervisor])
            self._supervisor = None
        if self._client.socket() is not None:
            properties = None
            if end_session and self._options.protocol is MQTTProtocolVersion.MQTTv5:
                properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = 0
            self._client.disconnect(properties=properties)
            for _ in range(40):  # the DISCONNECT waits for room in the socket's buffer
                if self._client.socket() is None:
                    break
                await asyncio.sleep(0.025)
        self._detach()
        self._set_down()

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout=within_s)
        return self._connected

    async def next_batch(self, max_messages: int) -> list[Delivery]:
        """Wait for a message (or ``interrupt``), then take up to ``max_messages`` at once."""
        if not self._inbox:
            self._wakeup.clear()
            await self._wakeup.wait()
        inbox = self._inbox
        if len(inbox) <= max_messages:
            batch = list(inbox)
            inbox.clear()
            return batch
        return [inbox.popleft() for _ in range(max_messages)]

    def interrupt(self) -> None:
        """Wake ``next_batch`` with nothing, so its caller can see it should stop."""
        self._wakeup.set()

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """PUBACK what is stored; deliveries of an earlier connection will come again."""
        # Not once the socket is closed: a packet id names a message of one connection only.
        # (Before the SUBACK is fine: the session's queued messages may come first.)
        if self._fd is None or self._connecting:
            return
        current, client = self._connection, self._client
        self.last_activity = time.monotonic()
        ours = [d for d in deliveries if d.qos > 0 and d.connection == current]
        if isinstance(client, _BulkClient):
            client.puback([d.mid for d in ours if d.qos == 1])
            ours = [d for d in ours if d.qos != 1]
        for delivery in ours:
            client.ack(delivery.mid, delivery.qos)
        self._update_writer()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Send a message (QoS 1: again after a reconnect, until the broker has it)."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            try:
                loop.call_soon_threadsafe(self._publish, topic, payload, qos, retain)
            except RuntimeError:  # the loop is closed: the service has stopped
                log.warning("mqtt.publish_after_stop", topic=topic)
            return
        self._publish(topic, payload, qos, retain)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self._connecting:
            # paho's socket is being replaced in another thread: send it once that is done.
            self._deferred.append((topic, payload, qos, retain))
            return
        self._client.publish(topic, payload, qos=qos, retain=retain)
        self._update_writer()

    # Connecting, on the loop

    async def _keep_connected(self) -> None:
        low, high = self._options.reconnect_delay_s
        delay = low
        while not self._stopping.is_set():
            self._closed.clear()
            self._came_up = False
            self._connecting = True
            try:
                await asyncio.to_thread(self._client.reconnect)
            except Exception as error:  # whatever it is, try again later
                log.warning(
                    "mqtt.connect_failed",
                    host=self._broker.host,
                    port=self._broker.port,
                    error=str(error) or type(error).__name__,
                    exc_info=not isinstance(error, OSError | ValueError),
                )
            else:
                self._attach()
            finally:
                self._connecting = False
                self._publish_deferred()
            if self._fd is not None:
                await self._wait_until(self._closed)
                if self._came_up:
                    delay = low  # it was a working connection: start the backoff again
            if self._options.takeover:
                self._closed.set()
                return
            if await self._wait_until(self._stopping, within_s=delay):
                return
            delay = min(delay * 2, high)

    async def _wait_until(self, event: asyncio.Event, within_s: float | None = None) -> bool:
        """Until ``event`` is set, or stop is asked, or ``timeout``; True if ``event`` is set."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())}
        try:
            await asyncio.wait(waits, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return event.is_set()

    def _attach(self) -> None:
        """Have the loop watch the new socket."""
        loop, sock = self._loop, self._client.socket()
        if loop is None or sock is None:
            self._closed.set()
            return
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            # PUBACKs and Acks are small writes in a row: without this, Nagle's algorithm
            # holds each one back until the last is acknowledged (tens of ms on loopback).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._on_readable)
        self._writing = False
        self._update_writer()
        self._misc = loop.call_later(MISC_EVERY_S, self._on_misc)

    def _detach(self) -> None:
        """Stop watching the socket (before it is closed: its number may be reused)."""
        loop, fd = self._loop, self._fd
        if loop is not None and fd is not None:
            loop.remove_reader(fd)
            if self._writing:
                loop.remove_writer(fd)
        self._fd, self._writing = None, False
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _publish_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for topic, payload, qos, retain in deferred:
            self._publish(topic, payload, qos, retain)

    # Reading and writing, on the loop

    def _on_readable(self) -> None:
        self._read_scheduled = False
        client = self._client
        if not isinstance(client, _BulkClient):
            self._received_at = self._clock()
        if isinstance(client, _BulkClient):
            client.drained = False
            client.budget = PACKETS_PER_TURN
            while client.budget > 0:
                client.budget -= 1
                if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._fd is None:
                    return  # the connection is gone (paho closed the socket)
                if client.drained:
                    break
            else:
                # Bytes may be left in our buffer, where the loop cannot see them.
                if self._loop is not None and not self._read_scheduled:
                    self._read_scheduled = True
                    self._loop.call_soon(self._on_readable)
        elif client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._fd is None:
            return
        self._update_writer()

    def _on_read(self) -> None:
        """Bytes came in: what they hold was received now."""
        self._received_at = self._clock()

    def _on_writable(self) -> None:
        self._client.loop_write()
        self._update_writer()

    def _update_writer(self) -> None:
        """Watch for writability while paho has bytes it could not send at once."""
        loop, fd = self._loop, self._fd
        if loop is None or fd is None:
            return
        wanted = self._client.want_write()
        if wanted and not self._writing:
            loop.add_writer(fd, self._on_writable)
        elif self._writing and not wanted:
            loop.remove_writer(fd)
        self._writing = wanted

    def _on_misc(self) -> None:
        self._misc = None
        if self._fd is None or self._loop is None:
            return
        self._client.loop_misc()
        if self._fd is not None:
            self._update_writer()
            self._misc = self._loop.call_later(MISC_EVERY_S, self._on_misc)

    # paho's callbacks: on the loop's thread (but on_socket_close, also in a connect's thread)

    def _on_socket_close(self, _client: paho.Client, _userdata: Any, _sock: Any) -> None:
        # In a connect's thread, paho closes a socket the loop never watched.
        if threading.get_ident() == self._loop_thread:
            self._detach()
            self._closed.set()

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
        if self._options.takeover:
            # MQTT 5 unsubscribes what it is given; a session without subscriptions is up.
            filters = list(self._options.subscriptions)
            if filters:
                client.unsubscribe(filters)
            else:
                self._on_subscribe(client, None, 0, [], None)
            log.info("mqtt.takeover_connected", client_id=self._options.client_id)
            return
        client.subscribe([(topic, 1) for topic in self._options.subscriptions])
        log.info("mqtt.connected", host=self._broker.host, port=self._broker.port)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode] | ReasonCode,
        _properties: Properties | None,
    ) -> None:
        reasons = reasons if isinstance(reasons, list) else [reasons]
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("mqtt.subscribe_refused", reasons=refused)
        self._came_up = True
        self._connected = True
        self.last_activity = time.monotonic()
        self._up.set()
        metrics.MQTT_CONNECTED.set(1)

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._set_down()
        if not self._stopping.is_set():
            log.warning("mqtt.disconnected", reason=str(reason))

    def _set_down(self) -> None:
        self._connected = False
        self._up.clear()
        metrics.MQTT_CONNECTED.set(0)

    def _received(self, topic: bytes, payload: bytes, qos: int, retain: bool, mid: int) -> None:
        # Topics are UTF-8 by the MQTT spec; a broken one is kept readable for the dead letters.
        try:
            text = topic.decode()
        except UnicodeDecodeError:
            text = topic.decode("utf-8", "replace")
        if qos == 0 and len(self._inbox) >= self._options.inbox_limit and text[-4:] != "/sos":
            # Only QoS 0 can be shed (never an SOS); QoS 1 is bounded by the in-flight window.
            metrics.INBOX_DROPPED.inc()
            return
        self.last_activity = time.monotonic()
        self._inbox.append(
            Delivery(
                topic=text,
                payload=payload,
                qos=qos,
                retain=retain,
                mid=mid,
                connection=self._connection,
                received_at=self._received_at,
            )
        )
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        """Plain paho's way in, when FAST_PATH is off."""
        self._received(
            bytes(message._topic),
            bytes(message.payload),
            message.qos,
            bool(message.retain),
            message.mid,
        )
