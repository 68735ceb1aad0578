"""Ingest members: a live member drains the broker session of a dead one.

Mosquitto hands each message of a ``$share`` group to one member's session, and keeps what it
gave a member that died (in flight, or queued while it is away) until that client id connects
again. So every member watches the others (ingest/membership.py); when one is gone, a live
member takes its lock, connects under its client id (clean start off: the same session),
unsubscribes its filters so that nothing new is routed to it, stores what was queued or in
flight for it through a pipeline of its own (acknowledging after the commit, as always), and
once the session has been quiet for a moment ends it (MQTT 5: session expiry 0 at DISCONNECT)
and lets go. If the dead member comes back under its own id meanwhile, the broker hands the
session back to it and the drain simply ends. A drain that is stopped or cut off leaves the
session as it is, for the next member to drain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from devices.clock import Clock, system_clock
from ingest.membership import GoneMember, MemberLocks
from ingest.mqtt import BrokerAddress, MqttConnection, SessionOptions
from ingest.service import IngestService

log = structlog.get_logger(__name__)

# A drain that left the session (cut off, refused) is tried again after this long.
RETRY_AFTER_S = 10.0

# Builds the drain's own ingest service on the connection that resumed the gone member's session.
DrainService = Callable[[MqttConnection], IngestService]


@dataclass(frozen=True, kw_only=True, slots=True)
class TakeoverOptions:
    # How often a member says it is here and looks for gone members.
    watch_every_s: float = 1.0
    # Unseen this long (and its lock free): gone. Longer than a database restart takes, so
    # that members reconnecting after one do not take each other's sessions for nothing.
    grace_s: float = 5.0
    # PostgreSQL ends a member's idle lock session after this long (a host that vanished).
    idle_timeout_s: float = 15.0
    # A drain ends once nothing came in or was acknowledged for this long.
    quiet_s: float = 1.0
    connect_within_s: float = 10.0


@dataclass(frozen=True, kw_only=True, slots=True)
class DrainResult:
    client_id: str
    messages: int
    ended: bool  # the session was drained and ended (not taken back, stopped or cut off)
    seconds: float


class Members:
    """This process's part in the membership: renew our row and lock, drain gone members."""

    def __init__(
        self,
        *,
        engine: Engine,
        broker: BrokerAddress,
        session: SessionOptions,
        drain_service: DrainService,
        options: TakeoverOptions | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._engine, self._broker, self._session = engine, broker, session
        self._drain_service, self._clock = drain_service, clock
        self._options = options or TakeoverOptions()
        self._locks = MemberLocks(
            engine, session.client_id, idle_timeout_s=self._options.idle_timeout_s
        )
        self._db = asyncio.Lock()  # one database session, used by one call at a time
        self._draining: set[str] = set()
        # A drain that did not end the session is tried again after a while, not every second.
        self._not_before: dict[str, float] = {}
        self.drained: list[DrainResult] = []

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                while not stop.is_set():
                    for member in await self._look_around():
                        self._draining.add(member.client_id)
                        tasks.create_task(
                            self._take_over(member, stop), name=f"takeover-{member.client_id}"
                        )
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=self._options.watch_every_s)
                    except TimeoutError:
                        continue
        finally:
            await asyncio.to_thread(self._locks.close)

    async def _look_around(self) -> list[GoneMember]:
        try:
            async with self._db:
                await asyncio.to_thread(self._locks.renew, self._session.subscriptions)
                now = time.monotonic()
                waiting = {m for m, at in self._not_before.items() if at > now}
                return await asyncio.to_thread(
                    self._locks.claim_gone, self._options.grace_s, self._draining | waiting
                )
        except SQLAlchemyError as error:
            log.warning("ingest.members_unavailable", error=type(error).__name__)
            async with self._db:
                await asyncio.to_thread(self._locks.lost)
            return []

    async def _take_over(self, member: GoneMember, stop: asyncio.Event) -> None:
        try:
            try:
                result = await self.drain(member, stop)
            except Exception:  # a bug of ours must not stop this member's own ingest
                log.exception("ingest.takeover_failed", member=member.client_id)
                result = DrainResult(
                    client_id=member.client_id, messages=0, ended=False, seconds=0.0
                )
            self.drained.append(result)
            if result.ended:
                self._not_before.pop(member.client_id, None)
            else:
                self._not_before[member.client_id] = time.monotonic() + RETRY_AFTER_S
            try:
                async with self._db:
                    await asyncio.to_thread(
                        self._locks.release,
                        member.client_id,
                        forget_after_s=self._options.grace_s if result.ended else None,
                    )
            except SQLAlchemyError as error:
                log.warning("ingest.members_unavailable", error=type(error).__name__)
                async with self._db:
                    await asyncio.to_thread(self._locks.lost)
        finally:
            self._draining.discard(member.client_id)

    async def drain(self, member: GoneMember, stop: asyncio.Event) -> DrainResult:
        """Resume ``member``'s session, store what it holds, and end it once quiet."""
        options = replace(
            self._session,
            client_id=member.client_id,
            subscriptions=member.subscriptions,
            takeover=True,
        )
        connection = MqttConnection(self._broker, options, self._clock)
        service = self._drain_service(connection)
        started = time.monotonic()
        log.info("ingest.takeover_started", member=member.client_id)
        ended = False
        await connection.start()
        try:
            if await connection.wait_connected(self._options.connect_within_s):
                running = asyncio.create_task(service.run(), name=f"drain-{member.client_id}")
                await self._until_quiet(connection, service, stop)
                service.stop()
                await running
                # Never end a session that still holds something we did not acknowledge.
                ended = not connection.closed and connection.pending == 0 and not stop.is_set()
        finally:
            await connection.stop(end_session=ended)
        result = DrainResult(
            client_id=member.client_id,
            messages=service.handled,
            ended=ended,
            seconds=round(time.monotonic() - started, 3),
        )
        log.info(
            "ingest.takeover_drained",
            member=member.client_id,
            messages=result.messages,
            ended=result.ended,
            seconds=result.seconds,
        )
        return result

    async def _until_quiet(
        self, connection: MqttConnection, service: IngestService, stop: asyncio.Event
    ) -> None:
        quiet_s = self._options.quiet_s
        while not stop.is_set() and not connection.closed:
            idle = time.monotonic() - connection.last_activity
            if idle >= quiet_s and connection.pending == 0 and not service.busy:
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(0.1, quiet_s))
            except TimeoutError:
                continue
