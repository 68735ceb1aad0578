"""Who the ingest members are, and which of them are gone: rows and advisory locks in PostgreSQL.

Every ``anxin ingest`` sharing the uplinks (``$share``) is a member. It keeps a row in
``ingest_members`` (its client id, its subscriptions, when it was last seen) and holds, for as
long as it lives, a session-level advisory lock named after its client id, on a connection of
its own. A member is **gone** when its row has not been renewed for a grace period and its lock
is free: a killed process loses its database connection at once, and PostgreSQL frees its lock
with it; a vanished host's idle connection is ended by PostgreSQL after
``idle_session_timeout``. Whoever takes a gone member's lock drains its broker session
(ingest/takeover.py) and holds the lock meanwhile, so two members never drain one session.

Synchronous, for a worker thread; one ``MemberLocks`` per process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Engine, String, text
from sqlalchemy.orm import Mapped, mapped_column

from devices.sql import Base, UtcDateTime

# The first key of the two-key advisory locks naming members (the second: hashtext(client id)).
# The scheduler's lock (anxin/leader.py) is a one-key lock: another key space.
MEMBER_LOCKS = 12349


class MemberRow(Base):
    """One ingest member, as it last said it was there (renewed every second or so)."""

    __tablename__ = "ingest_members"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Its broker subscriptions ($share/group/...): what a takeover takes back from the broker.
    subscriptions: Mapped[list[str]] = mapped_column(JSON)
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True, kw_only=True, slots=True)
class GoneMember:
    client_id: str
    subscriptions: tuple[str, ...]


_LOCK = text("SELECT pg_try_advisory_lock(:ns, hashtext(:client_id))")
_UNLOCK = text("SELECT pg_advisory_unlock(:ns, hashtext(:client_id))")
_RENEW = text(
    "INSERT INTO ingest_members (client_id, subscriptions, joined_at, seen_at) "
    "VALUES (:client_id, CAST(:subscriptions AS json), now(), now()) "
    "ON CONFLICT (client_id) DO UPDATE "
    "SET subscriptions = excluded.subscriptions, seen_at = excluded.seen_at"
)
_UNSEEN = text(
    "SELECT client_id, subscriptions FROM ingest_members "
    "WHERE client_id <> :client_id AND seen_at < now() - make_interval(secs => :grace_s) "
    "ORDER BY seen_at"
)
_FORGET = text(
    "DELETE FROM ingest_members "
    "WHERE client_id = :client_id AND seen_at < now() - make_interval(secs => :grace_s)"
)


class MemberLocks:
    """This member's database session: its own lock, its row, and the claims on gone members."""

    def __init__(self, engine: Engine, client_id: str, *, idle_timeout_s: float) -> None:
        self._engine, self._client_id = engine, client_id
        self._idle_timeout_ms = int(idle_timeout_s * 1000)
        self._connection: Connection | None = None
        self.holds_own_lock = False

    def renew(self, subscriptions: Sequence[str]) -> None:
        """Say we are here; take our own lock if we do not hold it (after a reconnect, or once
        a member that drained our session lets go)."""
        connection = self._connect()
        if not self.holds_own_lock:
            self.holds_own_lock = self._try_lock(connection, self._client_id)
        connection.execute(
            _RENEW,
            {"client_id": self._client_id, "subscriptions": json.dumps(list(subscriptions))},
        )

    def claim_gone(self, grace_s: float, skip: set[str]) -> list[GoneMember]:
        """The members unseen for ``grace_s`` whose lock we could take: now ours to drain."""
        connection = self._connect()
        rows = connection.execute(_UNSEEN, {"client_id": self._client_id, "grace_s": grace_s}).all()
        claimed = []
        for client_id, subscriptions in rows:
            if client_id in skip:
                continue
            if self._try_lock(connection, client_id):
                claimed.append(
                    GoneMember(client_id=client_id, subscriptions=_filters(subscriptions))
                )
        return claimed

    def release(self, client_id: str, *, forget_after_s: float | None) -> None:
        """Let go of a drained member; forget its row if it has not come back meanwhile."""
        connection = self._connect()
        if forget_after_s is not None:
            connection.execute(_FORGET, {"client_id": client_id, "grace_s": forget_after_s})
        connection.execute(_UNLOCK, {"ns": MEMBER_LOCKS, "client_id": client_id})

    def close(self) -> None:
        """End the session: every lock it holds is freed with it."""
        connection, self._connection = self._connection, None
        self.holds_own_lock = False
        if connection is not None:
            connection.invalidate()
            connection.close()

    def lost(self) -> None:
        """The session failed (the database restarted, the network): its locks are gone."""
        self.close()

    def _connect(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # A host that vanishes leaves its connection open on the server; ended after this
            # long idle, and the lock with it (PostgreSQL 14+). We speak every second or so.
            connection.execute(
                text("SELECT set_config('idle_session_timeout', :ms, false)"),
                {"ms": str(self._idle_timeout_ms)},
            )
            self._connection = connection
        return self._connection

    @staticmethod
    def _try_lock(connection: Connection, client_id: str) -> bool:
        return bool(
            connection.execute(_LOCK, {"ns": MEMBER_LOCKS, "client_id": client_id}).scalar()
        )


def _filters(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # a driver that hands JSON back as text
        value = json.loads(value)
    return tuple(str(item) for item in value or ())
