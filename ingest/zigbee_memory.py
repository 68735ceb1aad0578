"""Zigbee2MQTT's state memory in the database, so that every ingest member sees the same one.

The adapter reports a state property's *changes* (devices/zigbee2mqtt.py), so it needs the last
state of each friendly name. Kept in one process's memory, a device whose messages are spread
over several members (``$share``) would raise its alarm again on each member that had not seen
it yet, and its restore would be lost on one that never saw the alarm. So the states of the
registered names live in ``zigbee_states``, read at the start of the batch's transaction and
written in it: they change only if the batch commits. On PostgreSQL the rows are locked
(FOR UPDATE, in name order), so two members never decode one device's messages at once from the
same memory; a row is made first (empty: nothing remembered) for a name without one, so that
even the first messages of a device take the lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import JSON, Boolean, String, delete, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, Session, mapped_column

from devices.sql import Base, UtcDateTime
from devices.zigbee2mqtt import ZigbeeState


class ZigbeeStateRow(Base):
    __tablename__ = "zigbee_states"

    friendly_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    # State properties last seen in their alarm value, sorted.
    active: Mapped[list[str]] = mapped_column(JSON)
    online: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


def recall(session: Session, names: Iterable[str], now: datetime) -> dict[str, ZigbeeState]:
    """The remembered states of these (registered) names, locked until the transaction ends."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            postgresql.insert(ZigbeeStateRow)
            .values(
                [
                    {"friendly_name": n, "active": [], "online": None, "updated_at": now}
                    for n in wanted
                ]
            )
            .on_conflict_do_nothing(index_elements=["friendly_name"])
        )
    # ORM rows: remember() then finds them in the session without another query.
    rows = session.scalars(
        select(ZigbeeStateRow)
        .where(ZigbeeStateRow.friendly_name.in_(wanted))
        .order_by(ZigbeeStateRow.friendly_name)
        .with_for_update()
    )
    return {
        row.friendly_name: ZigbeeState(active=frozenset(row.active or ()), online=row.online)
        for row in rows
    }


def remember(
    session: Session, states: Mapping[str, ZigbeeState | None], registered: Iterable[str],
    now: datetime,
) -> None:  # fmt: skip
    """Write what the batch left for the registered names (None: forget the name)."""
    known = set(registered)
    forget = sorted(n for n, s in states.items() if s is None and n in known)
    if forget:
        session.execute(delete(ZigbeeStateRow).where(ZigbeeStateRow.friendly_name.in_(forget)))
    for name, state in sorted(states.items()):
        if state is None or name not in known:
            continue
        row = session.get(ZigbeeStateRow, name)
        if row is None:
            row = ZigbeeStateRow(friendly_name=name)
            session.add(row)
        row.active, row.online, row.updated_at = sorted(state.active), state.online, now
