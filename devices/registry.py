"""The registry of devices: what is installed where, and when it was last heard from."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    String,
    Table,
    Update,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from devices.elders import ElderRow, welfare_key
from devices.sql import Base, UtcDateTime
from devices.zigbee2mqtt import ZigbeeDevice


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    MAINTENANCE = "maintenance"  # known to be away: no offline alerts
    RETIRED = "retired"


class DeviceRow(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    elder_id: Mapped[int | None] = mapped_column(
        ForeignKey("elders.id", ondelete="SET NULL"), index=True
    )
    room: Mapped[str | None] = mapped_column(String(64))
    install_date: Mapped[date | None] = mapped_column(Date)
    # The friendly name a Zigbee2MQTT gateway publishes it under.
    zigbee_name: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=DeviceStatus.ACTIVE.value)
    # Indexed: the scheduler follows the devices heard from by it (a pass reads the devices
    # heard since the last one, not the whole registry).
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    online: Mapped[bool | None] = mapped_column(Boolean)
    battery: Mapped[float | None] = mapped_column(Float)
    # Indexed: the scheduler follows new devices by it.
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=lambda: datetime.now(UTC), index=True
    )

    elder: Mapped[ElderRow | None] = relationship(lazy="raise")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceInfo:
    """What the rules need to know about a registered device."""

    device_id: str
    model: str
    elder_id: int | None
    # The elder's categories (living_alone, disabled …): some rules weigh them.
    elder_categories: frozenset[str] = frozenset()
    status: str = DeviceStatus.ACTIVE.value
    # The elder's community (tier path), a tag of the device's telemetry points.
    community: str | None = None
    # The elder's own welfare settings (``ElderRow.welfare``) as sorted (name, value) pairs.
    elder_welfare: tuple[tuple[str, Any], ...] = ()


# Not frozen: one or more is made per message, and a frozen dataclass's __init__ costs three
# times as much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class Sighting:
    """A device was heard from."""

    device_id: str
    seen_at: datetime
    battery: float | None = None
    online: bool | None = None


def find_devices(session: Session, device_ids: Iterable[str]) -> dict[str, DeviceInfo]:
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(
            DeviceRow.id,
            DeviceRow.model,
            DeviceRow.elder_id,
            DeviceRow.status,
            ElderRow.categories,
            ElderRow.community,
            ElderRow.welfare,
        )
        .outerjoin(ElderRow, ElderRow.id == DeviceRow.elder_id)
        .where(DeviceRow.id.in_(ids))
    )
    # Held for every device heard from (ingest's cache): one copy of each id, and the few
    # models, statuses, communities and category sets shared (a fleet of 100,000 devices
    # otherwise keeps an empty frozenset, 216 bytes, and a model name per device).
    intern = sys.intern
    return {
        (device_id := intern(row.id)): DeviceInfo(
            device_id=device_id,
            model=intern(row.model),
            elder_id=row.elder_id,
            elder_categories=_categories(tuple(row.categories or ())),
            status=intern(row.status),
            community=None if row.community is None else intern(row.community),
            elder_welfare=welfare_key(row.welfare),
        )
        for row in rows
    }


@lru_cache(maxsize=4096)
def _categories(categories: tuple[str, ...]) -> frozenset[str]:
    return frozenset(categories)


def find_zigbee_devices(session: Session, names: Iterable[str]) -> dict[str, ZigbeeDevice]:
    """Registered devices by the friendly names their Zigbee2MQTT gateway uses."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.execute(
        select(DeviceRow.zigbee_name, DeviceRow.id, DeviceRow.model).where(
            DeviceRow.zigbee_name.in_(wanted)
        )
    )
    return {
        row.zigbee_name: ZigbeeDevice(device_id=row.id, model=row.model)
        for row in rows
        if row.zigbee_name is not None
    }


def register_device(
    session: Session, device_id: str, model: str, elder_id: int | None = None
) -> DeviceInfo:
    """Add a device, or update the model and elder of one already registered."""
    row = session.get(DeviceRow, device_id)
    if row is None:
        row = DeviceRow(id=device_id, model=model, elder_id=elder_id)
        session.add(row)
    else:
        row.model, row.elder_id = model, elder_id
    return DeviceInfo(device_id=device_id, model=model, elder_id=elder_id)


@cache
def _sightings_statement() -> Update:
    """Built once: a statement object reused keeps its cache key, so a batch does not pay for
    building and keying it again (the SQL is the same)."""
    table = cast(Table, DeviceRow.__table__)  # declared as FromClause; it is our Table
    seen = bindparam("p_seen", type_=UtcDateTime)
    return (
        update(table)
        .where(table.c.id == bindparam("p_id"))
        .where(or_(table.c.last_seen_at.is_(None), table.c.last_seen_at <= seen))
        .values(
            last_seen_at=seen,
            battery=func.coalesce(bindparam("p_battery", type_=Float), table.c.battery),
            online=func.coalesce(bindparam("p_online", type_=Boolean), table.c.online),
        )
    )


def record_sightings(session: Session, sightings: Iterable[Sighting]) -> None:
    """Move each device's last-seen time forward (never back): one statement for the batch."""
    latest: dict[str, Sighting] = {}
    for sighting in sightings:
        latest[sighting.device_id] = merge_sightings(latest.get(sighting.device_id), sighting)
    if not latest:
        return
    session.execute(
        _sightings_statement(),
        [
            {"p_id": s.device_id, "p_seen": s.seen_at, "p_battery": s.battery, "p_online": s.online}
            for s in latest.values()
        ],
    )


def merge_sightings(earlier: Sighting | None, later: Sighting) -> Sighting:
    """Fold two sightings of one device: the latest time, the latest known values. The id is
    ``earlier``'s string (the same device): a cache keeps its one copy (SightingThrottle)."""
    if earlier is None:
        return later
    device_id = earlier.device_id
    if later.seen_at < earlier.seen_at:
        earlier, later = later, earlier
    return Sighting(
        device_id=device_id,
        seen_at=later.seen_at,
        battery=later.battery if later.battery is not None else earlier.battery,
        online=later.online if later.online is not None else earlier.online,
    )
