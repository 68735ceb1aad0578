from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from devices.registry import DeviceRow, register_device
from ingest.registry_cache import DeviceCache

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_new_devices_are_known_at_once_and_changes_within_the_ttl(
    sessions: sessionmaker[Session],
) -> None:
    now = [T0]
    cache = DeviceCache(clock=lambda: now[0], ttl=timedelta(seconds=10))
    with sessions() as session:
        assert cache.find(session, ["d1"]) == {}
    with sessions.begin() as session:
        register_device(session, "d1", "sos-pendant")
    with sessions() as session:
        assert cache.find(session, ["d1"])["d1"].model == "sos-pendant"  # not a cached miss
    with sessions.begin() as session:
        device = session.get(DeviceRow, "d1")
        assert device is not None
        device.model = "pull-cord"
    with sessions() as session:
        assert cache.find(session, ["d1"])["d1"].model == "sos-pendant"  # within the ttl
        now[0] = T0 + timedelta(seconds=10)
        assert cache.find(session, ["d1"])["d1"].model == "pull-cord"
