"""Less database work per message: a short-lived cache of registered devices, and last-seen
times written at a set resolution instead of at every heartbeat."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from alerting.decisions import DeadlineRule, SetDeadline
from devices.clock import Clock
from devices.registry import DeviceInfo, Sighting, find_devices, merge_sightings

# How long a registered device's model and elder are trusted before they are read again.
REGISTRY_TTL = timedelta(seconds=10)


class DeviceCache:
    """Registered devices as the rules see them, re-read after ``ttl``.

    A device not found is asked for again in the next batch, so a newly registered device
    is known at once; a change to a known one (model, elder) shows within ``ttl``.
    """

    def __init__(self, clock: Clock, ttl: timedelta = REGISTRY_TTL) -> None:
        self._clock, self._ttl = clock, ttl
        self._known: dict[str, tuple[DeviceInfo, datetime]] = {}

    def find(self, session: Session, device_ids: Iterable[str]) -> dict[str, DeviceInfo]:
        now = self._clock()
        found: dict[str, DeviceInfo] = {}
        missing = set()
        for device_id in set(device_ids):
            cached = self._known.get(device_id)
            if cached is not None and now - cached[1] < self._ttl:
                found[device_id] = cached[0]
            else:
                missing.add(device_id)
        if missing:
            fresh = find_devices(session, missing)
            for device_id in missing - fresh.keys():
                self._known.pop(device_id, None)  # removed from the registry
            for device_id, info in fresh.items():
                self._known[device_id] = (info, now)
            found.update(fresh)
        return found


class SightingThrottle:
    """Which sightings are worth a write: last-seen moved by ``resolution``, or news.

    Offline detection works in minutes, so a last-seen time a few seconds old loses nothing,
    while writing it at every heartbeat of a busy fleet would be most of the database's work.
    A battery level or online state that changed is always written.
    """

    def __init__(self, resolution: timedelta = timedelta(seconds=5)) -> None:
        self._resolution = resolution
        self._written: dict[str, Sighting] = {}

    def worth_writing(self, sightings: Iterable[Sighting]) -> list[Sighting]:
        chosen = []
        for sighting in sightings:
            last = self._written.get(sighting.device_id)
            if (
                last is None
                or sighting.seen_at - last.seen_at >= self._resolution
                or (sighting.battery is not None and sighting.battery != last.battery)
                or (sighting.online is not None and sighting.online != last.online)
            ):
                chosen.append(sighting)
        return chosen

    def written(self, sightings: Iterable[Sighting]) -> None:
        """Call once the sightings are committed."""
        for sighting in sightings:
            last = self._written.get(sighting.device_id)
            if last is not None:  # the fold keeps last's id
                self._written[last.device_id] = merge_sightings(last, sighting)
                continue
            # Kept for as long as the device is heard from: one copy of its id, shared (the
            # sighting's is a new string each time, read from the topic).
            device_id = sys.intern(sighting.device_id)
            self._written[device_id] = replace(sighting, device_id=device_id)


class DeadlineThrottle:
    """Which deadlines are worth a write: an inactivity deadline only once its basis moved by
    ``resolution`` (a sensor in a busy room fires every minute; the rule counts hours), any
    other at once (check-ins, tests, bed events are few)."""

    def __init__(self, resolution: timedelta = timedelta(seconds=60)) -> None:
        self._resolution = resolution
        self._written: dict[tuple[DeadlineRule, str], SetDeadline] = {}

    def worth_writing(self, deadlines: Iterable[SetDeadline]) -> list[SetDeadline]:
        chosen = []
        for deadline in deadlines:
            last = self._written.get((deadline.rule, deadline.subject))
            if (
                deadline.rule is not DeadlineRule.INACTIVITY
                or last is None
                or deadline.basis_at - last.basis_at >= self._resolution
                or deadline.due_at is None
            ):
                chosen.append(deadline)
        return chosen

    def written(self, deadlines: Iterable[SetDeadline]) -> None:
        """Call once the deadlines are committed."""
        for deadline in deadlines:
            key = (deadline.rule, deadline.subject)
            last = self._written.get(key)
            if last is None or last.basis_at <= deadline.basis_at:
                self._written[key] = deadline
