"""The watch gateway's TCP server: asyncio streams, one task per connection.

Each connection is read frame by frame (gateways/watch/frames.py), each frame translated
(translate.py) and published on the gateway's link; the watch's reply is written only once
what it answers is safe: after the broker's PUBACK, or for an SOS after anxin's Ack
``received`` (the alert is stored). A watch whose reply does not come resends, which covers any
outage in between.

The reader does not wait for a frame's PUBACK before it reads the next one: a connection's
frames are pipelined (``_Pipeline``), their replies written in frame order as the PUBACKs come,
at most ``in_flight_per_connection`` at once (then the reader waits and TCP pushes back on
the watch). So an AL behind a connection's LKs is read at once, and its SOS, in a task of its
own, is published at once (the link lets alarms skip the heartbeats' wait); the watch's LKs are
answered meanwhile, and its repeats (same seq) join the wait rather than publish again.

Bad input (junk, an unreadable header, an unknown type, a frame over the size bound) is
logged and counted; the connection stays open and every other watch is served on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from anxin.settings import ConfigError, Settings, listen_address
from devices.payloads import AckPayload
from devices.topics import DEVICE_ID_PATTERN, Downlink, Uplink
from gateways.link import AckTimeoutError, LinkUnavailableError
from gateways.watch import metrics
from gateways.watch.downlinks import (
    GPS_ON,
    DownlinkError,
    WatchCommand,
    commands_for,
    message_for_ack,
)
from gateways.watch.frames import (
    DEFAULT_MAX_FRAME,
    Frame,
    FrameError,
    Framer,
    RawFrame,
    encode_frame,
    parse_frame,
)
from gateways.watch.messages import Alarm, Position, classify, read_message
from gateways.watch.translate import (
    Fix,
    Publication,
    ReplyWhen,
    Translation,
    fix_of,
    translate,
    unreadable_alarm,
)

log = structlog.get_logger(__name__)

READ_SIZE = 4096
# A watch that does not read what it is sent (a dead link the kernel has not noticed yet):
# beyond this much unsent, its connection is closed.
MAX_WRITE_BUFFER = 64 * 1024


class Uplinks(Protocol):
    """What the server needs of its link (gateways.link.GatewayLink)."""

    async def publish(self, device_id: str, kind: Uplink, payload: bytes) -> None: ...

    async def publish_sos(
        self, device_id: str, payload: bytes, *, seq: int, within_s: float
    ) -> AckPayload: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchOptions:
    host: str
    port: int
    # Silence after which a connection is closed: past the longest LK interval (8 min).
    idle_timeout_s: float = 600
    max_frame: int = DEFAULT_MAX_FRAME
    # Frames per second a connection may send on average, and in a burst; beyond, its reads
    # wait (TCP pushes back on the watch). A watch sends one frame a minute at rest, a few
    # after a CR, a handful of voice chunks at once.
    frames_per_s: float = 5.0
    frames_burst: int = 40
    # Frames of one connection whose publications wait for their PUBACKs at once; beyond, its
    # reads wait. An AL behind fewer LKs than this is read, and its SOS published, at once.
    in_flight_per_connection: int = 16
    # How long an SOS waits for anxin's Ack received before it is left to the watch's resend.
    ack_within_s: float = 30.0
    # Send APPLOCK,DW-1 (GPS on) once per connection, after its first LK is answered.
    gps_on: bool = True
    # More connections than this are refused at once (closed), so junk cannot exhaust the
    # process's file descriptors.
    max_connections: int = 20_000
    allowed_ids_file: Path | None = None


class AllowList:
    """The ids of ANXIN_WATCH_ALLOWED_IDS_FILE, re-read when the file changes (looked at no
    more than every ``recheck_s``). A file that goes away keeps the last list."""

    def __init__(
        self, path: Path, *, recheck_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._path, self._recheck_s, self._clock = path, recheck_s, clock
        self._mtime: float | None = None
        self._checked = -float("inf")
        self._ids: frozenset[str] = frozenset()
        try:
            self._load()
        except OSError as exc:
            raise ConfigError(
                f"ANXIN_WATCH_ALLOWED_IDS_FILE={str(path)!r}: {exc.strerror}"
            ) from exc

    def __contains__(self, device_id: object) -> bool:
        now = self._clock()
        if now - self._checked >= self._recheck_s:
            self._checked = now
            try:
                self._load()
            except OSError as exc:
                log.warning("watch.allowed_ids_unreadable", error=exc.strerror)
        return device_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def _load(self) -> None:
        mtime = self._path.stat().st_mtime
        if mtime == self._mtime:
            return
        lines = self._path.read_text(encoding="utf-8").splitlines()
        ids = {line.split("#", 1)[0].strip() for line in lines}
        self._ids = frozenset(i for i in ids if i)
        self._mtime = mtime
        log.info("watch.allowed_ids_loaded", ids=len(self._ids))


class _Bucket:
    """A token bucket: ``take`` waits while the connection is over its rate."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, float(burst)
        self._tokens = float(burst)
        self._stamp = asyncio.get_running_loop().time()

    async def take(self) -> None:
        now = asyncio.get_running_loop().time()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            metrics.RATE_LIMITED.inc()
            wait = (1 - self._tokens) / self._rate
            await asyncio.sleep(wait)
            self._stamp += wait
            self._tokens = 1.0
        self._tokens -= 1


class _Pipeline:
    """A connection's frames on their way to the broker, in the order they came.

    ``add`` starts a frame's publishing and returns at once, unless ``depth`` frames are
    already waiting (then it waits for one to finish: the reader stops, and TCP pushes back).
    Each frame's ``answer`` (its reply) runs once its own publishing succeeded and every
    earlier frame's turn is over, so replies keep frame order (ZJ's indexes, the first LK's
    reply before APPLOCK)."""

    @dataclass(slots=True)
    class _Turn:
        answer: Callable[[], None]
        published: bool | None = None  # None: not yet known

    __slots__ = ("_slots", "_tasks", "_turns")

    def __init__(self, depth: int, tasks: set[asyncio.Task[None]]) -> None:
        self._slots = asyncio.Semaphore(depth)
        self._turns: deque[_Pipeline._Turn] = deque()  # in frame order
        self._tasks = tasks  # kept by the server, so that stopping waits for them

    async def add(self, publish: Callable[[], Awaitable[bool]], answer: Callable[[], None]) -> None:
        await self._slots.acquire()
        turn = self._Turn(answer)
        self._turns.append(turn)
        task = asyncio.create_task(self._publish(publish, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, publish: Callable[[], Awaitable[bool]], turn: _Turn) -> None:
        try:
            turn.published = await publish()
        except Exception:  # one frame's bug never stops the others'
            turn.published = False
            log.exception("watch.frame_failed")
        # The answers that are due, in frame order: up to the first frame still waiting.
        turns = self._turns
        while turns and turns[0].published is not None:
            done = turns.popleft()
            self._slots.release()
            if done.published:
                try:
                    done.answer()
                except Exception:
                    log.exception("watch.reply_failed")


@dataclass(eq=False, kw_only=True)
class _Connection:
    writer: asyncio.StreamWriter
    peer: str
    # Every watch id heard on it (one, unless something relays several watches).
    ids: set[str] = field(default_factory=set)
    # Per id: the vendor prefix and whether it numbers its frames (ZJ's index).
    vendor: dict[str, str] = field(default_factory=dict)
    indexed: dict[str, bool] = field(default_factory=dict)
    gps_sent: set[str] = field(default_factory=set)
    # Per id: the last current GPS fix it reported (UD, AL), for an alarm that comes without.
    fixes: dict[str, Fix] = field(default_factory=dict)
    refused_logged: bool = False
    close_reason: str = "eof"

    def write(self, data: bytes) -> bool:
        """Queue ``data``; False (and the connection closing) if it cannot take more."""
        if self.writer.is_closing():
            return False
        transport = self.writer.transport
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.close("slow_reader")
            return False
        self.writer.write(data)
        return True

    def close(self, reason: str) -> None:
        if not self.writer.is_closing():
            self.close_reason = reason
            self.writer.close()


class WatchServer:
    """The GatewayServer of ``anxin gateway watch`` (anxin/gateway.py)."""

    def __init__(self, link: Uplinks, options: WatchOptions) -> None:
        self._link, self._options = link, options
        self._allowed = (
            AllowList(options.allowed_ids_file) if options.allowed_ids_file is not None else None
        )
        self._by_id: dict[str, _Connection] = {}
        self._open: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        # Every connection's frames waiting for their PUBACKs (_Pipeline).
        self._publishing: set[asyncio.Task[None]] = set()
        # (device_id, seq) → the task waiting for that SOS's Ack.
        self._alarms: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._server: asyncio.Server | None = None
        self._listening = False

    @property
    def address(self) -> tuple[str, int] | None:
        """Where it listens, once it does (the port is the real one when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        return len(self._open)

    def readiness(self) -> Mapping[str, Callable[[], bool]]:
        return {"listener": lambda: self._listening}

    async def serve(self, stop: asyncio.Event) -> None:
        options = self._options
        try:
            self._server = await asyncio.start_server(
                self._accept,
                options.host,
                options.port,
                limit=options.max_frame * 2,
                backlog=1024,  # thousands of watches reconnect at once after an outage
            )
        except OSError as exc:
            where = f"{options.host}:{options.port}"
            raise ConfigError(f"cannot listen on {where}: {exc.strerror}") from exc
        self._listening = True
        log.info("watch.listening", address=f"{options.host}:{options.port}")
        try:
            await stop.wait()
        finally:
            self._listening = False
            self._server.close()
            for connection in list(self._open):
                connection.close("stopping")
            for task in list(self._alarms.values()):
                task.cancel()
            pending = [*self._handlers, *self._publishing, *self._alarms.values()]
            if pending:
                await asyncio.wait(pending, timeout=5)
            await self._server.wait_closed()
            log.info("watch.stopped")

    # --- connections ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - start_server runs each handler as a task
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        connection = _Connection(writer=writer, peer=f"{peer[0]}:{peer[1]}" if peer else "?")
        metrics.CONNECTIONS_OPENED.inc()
        if len(self._open) >= self._options.max_connections:
            connection.close("full")
            log.warning("watch.connection_refused_full", peer=connection.peer)
        else:
            self._open.add(connection)
            metrics.CONNECTIONS.set(len(self._open))
        try:
            if connection in self._open:
                await self._read(connection, reader)
        except (ConnectionError, OSError) as exc:
            connection.close_reason = "reset"
            log.info("watch.connection_lost", peer=connection.peer, error=type(exc).__name__)
        except Exception:  # a bug on one connection never stops the others
            connection.close_reason = "error"
            log.exception("watch.connection_failed", peer=connection.peer)
        finally:
            self._forget(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            metrics.CONNECTIONS_CLOSED.labels(connection.close_reason).inc()
            self._handlers.discard(task)

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        metrics.CONNECTIONS.set(len(self._open))
        for device_id in connection.ids:
            if self._by_id.get(device_id) is connection:
                del self._by_id[device_id]
        if connection.ids:
            log.info(
                "watch.disconnected",
                device_id=",".join(sorted(connection.ids)),
                reason=connection.close_reason,
            )

    async def _read(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        options = self._options
        framer = Framer(options.max_frame)
        bucket = _Bucket(options.frames_per_s, options.frames_burst)
        pipeline = _Pipeline(options.in_flight_per_connection, self._publishing)
        while not connection.writer.is_closing():
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), options.idle_timeout_s)
            except TimeoutError:
                connection.close("idle")
                log.info("watch.idle_closed", peer=connection.peer, after_s=options.idle_timeout_s)
                return
            if not data:
                return
            for item in framer.feed(data):
                if isinstance(item, RawFrame):
                    await bucket.take()
                    if (read := self._frame(connection, item.data)) is not None:
                        frame, kind, translation = read
                        await pipeline.add(
                            functools.partial(
                                self._publish_all, frame, kind, translation.publications
                            ),
                            functools.partial(
                                self._answered, connection, frame, kind, translation.reply
                            ),
                        )
                else:
                    metrics.BAD_FRAMES.labels(item.problem.value).inc()
                    metrics.JUNK_BYTES.inc(item.size)
                    log.warning(
                        "watch.bad_input",
                        peer=connection.peer,
                        problem=item.problem.value,
                        bytes=item.size,
                    )

    def _bind(self, connection: _Connection, frame: Frame) -> None:
        """This connection is now the one of ``frame``'s watch id; a previous one is closed."""
        device_id = frame.device_id
        connection.vendor[device_id] = frame.vendor
        connection.indexed[device_id] = frame.index is not None
        current = self._by_id.get(device_id)
        if current is connection:
            return
        connection.ids.add(device_id)
        self._by_id[device_id] = connection
        if current is None:
            log.info("watch.connected", device_id=device_id, peer=connection.peer)
            return
        metrics.REPLACED.inc()
        log.warning(
            "watch.connection_replaced",
            device_id=device_id,
            old_peer=current.peer,
            new_peer=connection.peer,
        )
        current.ids.discard(device_id)
        if not current.ids:
            current.close("replaced")

    # --- frames ----------------------------------------------------------------------------

    def _frame(self, connection: _Connection, raw: bytes) -> tuple[Frame, str, Translation] | None:
        """Read one frame; an alarm to store starts its own wait, anything else to publish is
        returned for the connection's pipeline."""
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            metrics.BAD_FRAMES.labels("header").inc()
            log.warning("watch.bad_frame", peer=connection.peer, reason=str(exc), head=raw[:32])
            return None
        kind = classify(frame)
        metrics.FRAMES.labels(kind).inc()
        if not frame.length_ok:
            metrics.LENGTH_MISMATCHES.inc()
        if not DEVICE_ID_PATTERN.fullmatch(frame.device_id):  # pragma: no cover - digits only
            return None
        try:
            message = read_message(frame)
            translation = translate(frame, message, connection.fixes.get(frame.device_id))
            if isinstance(message, Position | Alarm) and (fix := fix_of(message.record)):
                connection.fixes[frame.device_id] = fix
        except Exception:  # an unreadable frame is logged and counted; the stream goes on
            metrics.BAD_FRAMES.labels("unreadable").inc()
            log.exception("watch.unreadable_frame", device_id=frame.device_id, type=kind)
            if kind != "AL":
                return None
            # A bug in reading an alarm must not silence it: a person checks it.
            translation = unreadable_alarm(frame)
        if self._refused(connection, frame, translation):
            return None
        self._bind(connection, frame)
        if kind == "unknown":
            metrics.UNKNOWN_TYPES.inc()
            log.info("watch.unknown_type", device_id=frame.device_id, type=frame.type[:24])
        if translation.reply_when is ReplyWhen.STORED:
            self._alarm(frame, kind, translation)
            return None
        return frame, kind, translation

    def _answered(
        self, connection: _Connection, frame: Frame, kind: str, reply: str | None
    ) -> None:
        """A frame's publications were PUBACKed: its reply, and GPS on after a first LK."""
        if reply is not None:
            self._reply(frame, reply)
        if kind == "LK":
            self._gps_on(connection, frame)

    def _refused(self, connection: _Connection, frame: Frame, translation: Translation) -> bool:
        """Registered-ids-only mode: an id not in the file is dropped, but for its SOS."""
        if self._allowed is None or frame.device_id in self._allowed:
            return False
        if translation.sos_seq is not None:
            log.warning("watch.sos_from_unlisted_id", device_id=frame.device_id)
            return False
        metrics.REFUSED.inc()
        if not connection.refused_logged:
            connection.refused_logged = True
            log.warning(
                "watch.unlisted_id",
                device_id=frame.device_id,
                peer=connection.peer,
                type=frame.type[:24],
            )
        return True

    async def _publish_all(
        self, frame: Frame, kind: str, publications: tuple[Publication, ...]
    ) -> bool:
        for publication in publications:
            payload = json.dumps(publication.payload, ensure_ascii=False).encode()
            try:
                await self._link.publish(frame.device_id, publication.kind, payload)
            except LinkUnavailableError as exc:
                metrics.NOT_PUBLISHED.labels(kind, "broker").inc()
                log.warning(
                    "watch.not_published", device_id=frame.device_id, type=kind, error=str(exc)
                )
                return False
        return True

    def _reply(self, frame: Frame, content: str) -> None:
        """Write ``content`` to the watch's current connection, echoing its frame's header."""
        connection = self._by_id.get(frame.device_id)
        if connection is None:
            return
        data = encode_frame(frame.vendor, frame.device_id, content, index=frame.index)
        if connection.write(data):
            metrics.REPLIES.labels(content.split(",", 1)[0]).inc()

    def _gps_on(self, connection: _Connection, frame: Frame) -> None:
        if not self._options.gps_on or frame.device_id in connection.gps_sent:
            return
        connection.gps_sent.add(frame.device_id)
        if self._send(frame.device_id, WatchCommand(content=GPS_ON, name="gps_on")):
            log.info("watch.gps_on_sent", device_id=frame.device_id)

    # --- alarms ------------------------------------------------------------------------------

    def _alarm(self, frame: Frame, kind: str, translation: Translation) -> None:
        seq = translation.sos_seq
        assert seq is not None  # noqa: S101 - ReplyWhen.STORED comes with its seq
        key = (frame.device_id, seq)
        if key in self._alarms:
            # The watch repeats its AL until answered: the first one's wait answers it.
            metrics.ALARM_REPEATS.inc()
            return
        task = asyncio.create_task(self._await_stored(frame, kind, translation, seq))
        self._alarms[key] = task
        task.add_done_callback(lambda _: self._alarms.pop(key, None))

    async def _await_stored(
        self, frame: Frame, kind: str, translation: Translation, seq: int
    ) -> None:
        sos = [p for p in translation.publications if p.kind is Uplink.SOS]
        rest = tuple(p for p in translation.publications if p.kind is not Uplink.SOS)
        device_id = frame.device_id
        started = time.monotonic()
        try:
            for publication in sos:
                payload = json.dumps(publication.payload, ensure_ascii=False).encode()
                ack = await self._link.publish_sos(
                    device_id, payload, seq=seq, within_s=self._options.ack_within_s
                )
        except LinkUnavailableError as exc:
            metrics.ALARMS_WAITED.labels("unavailable").inc()
            metrics.NOT_PUBLISHED.labels(kind, "broker").inc()
            log.warning("watch.sos_not_published", device_id=device_id, seq=seq, error=str(exc))
            return
        except AckTimeoutError:
            metrics.ALARMS_WAITED.labels("timeout").inc()
            metrics.NOT_PUBLISHED.labels(kind, "not_stored").inc()
            log.warning("watch.sos_not_stored_in_time", device_id=device_id, seq=seq)
            return
        metrics.ALARMS_WAITED.labels("received").inc()
        if not await self._publish_all(frame, kind, rest):
            return
        log.info(
            "watch.sos_stored",
            device_id=device_id,
            seq=seq,
            alert_id=ack.alert_id,
            waited_ms=round((time.monotonic() - started) * 1000, 1),
        )
        if translation.reply is not None:
            self._reply(frame, translation.reply)

    # --- downlinks ---------------------------------------------------------------------------

    def on_downlink(self, device_id: str, kind: Downlink, payload: bytes) -> None:
        """An Ack or Command from anxin; only those for a watch connected here are ours."""
        if device_id not in self._by_id:
            return
        try:
            commands = [message_for_ack(payload)] if kind is Downlink.ACK else commands_for(payload)
        except DownlinkError as exc:
            metrics.DOWNLINKS_DROPPED.labels("unmappable").inc()
            log.warning("watch.downlink_unmappable", device_id=device_id, error=str(exc))
            return
        for command in commands:
            self._send(device_id, command)

    def _send(self, device_id: str, command: WatchCommand) -> bool:
        connection = self._by_id.get(device_id)
        if connection is None:
            metrics.DOWNLINKS_DROPPED.labels("not_connected").inc()
            return False
        # Commands go out with the watch's own prefix, and index 0001 if it numbers its
        # frames (what Traccar's encoder does).
        index = "0001" if connection.indexed.get(device_id) else None
        vendor = connection.vendor.get(device_id, "3G")
        if not connection.write(encode_frame(vendor, device_id, command.content, index=index)):
            metrics.DOWNLINKS_DROPPED.labels("not_connected").inc()
            return False
        metrics.DOWNLINKS.labels(command.name).inc()
        log.info("watch.downlink_sent", device_id=device_id, what=command.name)
        return True


def options_from(settings: Settings) -> WatchOptions:
    """The server's options from anxin's settings (ANXIN_WATCH_*)."""
    host, port = listen_address(settings.watch_listen)
    return WatchOptions(
        host=host,
        port=port,
        idle_timeout_s=settings.watch_idle_timeout_s,
        gps_on=settings.watch_gps_on,
        allowed_ids_file=settings.watch_allowed_ids_file,
    )
