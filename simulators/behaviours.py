"""What a virtual device does, as pure functions of (seed, device, virtual time).

Nothing here reads a clock or keeps state between calls: the same seed, device and moment give
the same heartbeat jitter, battery level, morning bed exit or door use, so a scenario gives the
same traffic every time, whether it is written to a file or published live.

How each model behaves beyond its heartbeat is the declarative table :data:`BEHAVIOURS`, beside
the catalogue (devices/catalogue.py) that gives the heartbeat interval and the events a model can
send.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from devices.catalogue import DeviceModel
from devices.topics import Uplink

HOUR = timedelta(hours=1)
# Seconds of MQTT keepalive of a virtual device; the broker publishes its last will after 1.5×.
KEEPALIVE_S = 60
WILL_DELAY = timedelta(seconds=KEEPALIVE_S * 1.5)
# A heartbeat comes this share of its interval early or late.
JITTER = 0.05

# Motion events an hour by local hour of day: quiet nights, a busy morning and evening.
MOTION_PER_HOUR = (
    0.3, 0.2, 0.2, 0.2, 0.3, 0.8, 4.0, 6.0, 5.0, 4.0, 3.0, 3.0,
    4.0, 3.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0, 4.0, 3.0, 1.0, 0.5,
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class Behaviour:
    """What a model does besides heartbeats."""

    # "motion": motion events by time of day; "bed": in and out of bed; "door": going out
    # and coming back; "checkin": a daily check-in press; None: nothing.
    activity: str | None = None
    # Motion events an hour are MOTION_PER_HOUR times this.
    activity_scale: float = 1.0
    # Worn and put on the charger every night (22:00–06:00 local), drained during the day.
    recharged_nightly: bool = False
    # Telemetry (temperature_c, humidity) every this many seconds; 0: none.
    climate_every_s: int = 0
    # A wearable's readings (heart_rate, spo2, blood pressure) every this many seconds; 0: none.
    vitals_every_s: int = 0
    # A position (a heartbeat with ``location``: a 4G watch's UD) every this many seconds.
    positions_every_s: int = 0


BEHAVIOURS: Mapping[str, Behaviour] = {
    "sos-pendant": Behaviour(recharged_nightly=True),
    "4g-elder-phone": Behaviour(activity="checkin", recharged_nightly=True),
    "fall-detector": Behaviour(activity="motion", activity_scale=0.5),
    "pir-motion": Behaviour(activity="motion"),
    "bed-sensor": Behaviour(activity="bed"),
    "door-contact": Behaviour(activity="door"),
    "temperature-sensor": Behaviour(climate_every_s=1800),
    # A 4G watch: worn by day, charged at night, a position every 10 min (its UPLOAD interval)
    # and a heart-rate / SpO2 / blood-pressure reading every 30 min.
    "watch-4g": Behaviour(recharged_nightly=True, vitals_every_s=1800, positions_every_s=600),
}
QUIET = Behaviour()

# What counts as daily activity (a "quiet" situation holds it back).
ACTIVITY_EVENTS = frozenset({"motion", "bed_exit", "bed_enter", "door_open", "door_close"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Emission:
    """One message a virtual device sends (or the broker sends for it: its last will)."""

    at: datetime
    device_id: str
    kind: Uplink
    body: Mapping[str, Any] = field(default_factory=dict)
    qos: int = 0
    retain: bool = False
    # The broker publishes it when the device's link is gone: a live fleet does not send it.
    by_broker: bool = False

    @property
    def event_type(self) -> str | None:
        value = self.body.get("type") if self.kind is Uplink.EVENT else None
        return value if isinstance(value, str) else None


def _digest(seed: int, parts: tuple[object, ...]) -> int:
    text = "/".join(str(part) for part in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def stable_random(seed: int, *parts: object) -> random.Random:
    """A generator seeded by the parts, the same in every process (unlike ``hash()``)."""
    return random.Random(_digest(seed, parts))  # noqa: S311 - a simulation, not crypto


def stable_uniform(seed: int, low: float, high: float, *parts: object) -> float:
    """One number in [low, high) fixed by the parts: cheaper than a generator for one draw."""
    return low + (high - low) * (_digest(seed, parts) / 2**64)


@lru_cache(maxsize=65536)
def _phase(seed: int, device_id: str, interval_s: int) -> float:
    return stable_uniform(seed, 0, interval_s, device_id, "phase")


@lru_cache(maxsize=65536)
def _battery_profile(seed: int, device_id: str, low_pct: float) -> tuple[float, float, float]:
    """(daily drain of a worn device per hour, start level, drain per day) of one device."""
    rng = stable_random(seed, device_id, "battery")
    return rng.uniform(2.5, 4.0), rng.uniform(low_pct + 20, 100), rng.uniform(0.01, 0.05)


def heartbeat_times(
    seed: int, device_id: str, interval_s: int, origin: datetime, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Heartbeats in [start, end): every ``interval_s`` from a per-device phase, each a little
    early or late (never enough to swap two of them)."""
    phase = _phase(seed, device_id, interval_s)
    first = max(0, math.floor(((start - origin).total_seconds() - phase) / interval_s) - 1)
    index = first
    while True:
        jitter = stable_uniform(seed, -JITTER, JITTER, device_id, "beat", index)
        moment = origin + timedelta(seconds=phase + (index + jitter) * interval_s)
        if moment >= end:
            return
        if moment >= start:
            yield moment
        index += 1


def battery_level(
    seed: int, device_id: str, model: DeviceModel, origin: datetime, at: datetime, zone: tzinfo
) -> float | None:
    """The battery in percent at ``at``; None for a mains-powered model."""
    if model.battery is None:
        return None
    # A worn device drains at most 4 % an hour: 64 % by 22:00, never below 30 %.
    drain_per_h, start, drain_per_day = _battery_profile(seed, device_id, model.battery.low_pct)
    if BEHAVIOURS.get(model.name, QUIET).recharged_nightly:
        local = at.astimezone(zone)
        if local.hour >= 22 or local.hour < 6:
            return 100.0
        off_charger = datetime.combine(local.date(), time(6), tzinfo=zone)
        return round(100.0 - drain_per_h * (local - off_charger).total_seconds() / 3600, 1)
    days = (at - origin).total_seconds() / 86400
    return round(max(0.0, start - drain_per_day * days), 1)


def motion_times(
    seed: int, device_id: str, hour_start: datetime, per_hour: float
) -> list[datetime]:
    """Motion in the hour from ``hour_start``: a Poisson process at ``per_hour``."""
    if per_hour <= 0:
        return []
    rng = stable_random(seed, device_id, "motion", hour_start.timestamp())
    times: list[datetime] = []
    offset = 0.0
    while True:
        offset += rng.expovariate(per_hour / 3600)
        if offset >= 3600:
            return times
        times.append(hour_start + timedelta(seconds=offset))


def _local(day: date, hours: float, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=hours)


def bed_day(seed: int, device_id: str, day: date, zone: tzinfo) -> list[tuple[datetime, str]]:
    """Out of bed in the morning, maybe up once in the night, back to bed in the evening."""
    rng = stable_random(seed, device_id, "bed", day.isoformat())
    events = [
        (_local(day, min(9.0, max(5.0, rng.gauss(6.5, 0.75))), zone), "bed_exit"),
        (_local(day, min(23.5, max(20.0, rng.gauss(21.5, 0.66))), zone), "bed_enter"),
    ]
    if rng.random() < 0.4:  # a trip to the bathroom in the small hours
        up = rng.uniform(1.0, 4.5)
        events.append((_local(day, up, zone), "bed_exit"))
        events.append((_local(day, up + rng.uniform(4, 15) / 60, zone), "bed_enter"))
    return sorted(events)


def door_day(seed: int, device_id: str, day: date, zone: tzinfo) -> list[tuple[datetime, str]]:
    """Going out and coming back, zero to two times a day, in daytime."""
    rng = stable_random(seed, device_id, "door", day.isoformat())
    events = []
    for _ in range(rng.choices((0, 1, 2), weights=(2, 5, 3))[0]):
        leave = _local(day, rng.uniform(8.0, 17.0), zone)
        back = leave + timedelta(minutes=rng.uniform(30, 180))
        for moment in (leave, back):
            events.append((moment, "door_open"))
            events.append((moment + timedelta(seconds=rng.uniform(5, 15)), "door_close"))
    return sorted(events)


def checkin_day(seed: int, device_id: str, day: date, zone: tzinfo) -> list[tuple[datetime, str]]:
    """The daily "I am fine" press of a 4G elder phone, mid-morning."""
    rng = stable_random(seed, device_id, "checkin", day.isoformat())
    return [(_local(day, rng.uniform(8.0, 10.0), zone), "checkin")]


DAILY = {"bed": bed_day, "door": door_day, "checkin": checkin_day}


def temperature_at(seed: int, device_id: str, at: datetime, zone: tzinfo) -> float:
    """Indoor temperature: the home's own level, warmest mid-afternoon."""
    base = stable_uniform(seed, 17.0, 24.0, device_id, "climate")
    local = at.astimezone(zone)
    hours = local.hour + local.minute / 60
    return round(base + 2.0 * math.sin(2 * math.pi * (hours - 9) / 24), 1)


def humidity_at(seed: int, device_id: str, at: datetime) -> float:
    return round(
        stable_uniform(seed, 35, 65, device_id, "humidity", int(at.timestamp()) // 3600), 1
    )


def vitals_at(seed: int, device_id: str, at: datetime) -> dict[str, float]:
    """A wearable's readings: the elder's own resting levels, a little different each time."""
    rng = stable_random(seed, device_id, "vitals", int(at.timestamp()))
    heart = stable_uniform(seed, 62, 84, device_id, "heart")
    return {
        "heart_rate": round(heart + rng.uniform(-6, 6)),
        "spo2": round(rng.uniform(95, 99)),
        "bp_systolic": round(rng.uniform(112, 138)),
        "bp_diastolic": round(rng.uniform(68, 86)),
    }


def home_location(device_id: str) -> dict[str, float]:
    """Where the device's elder lives (somewhere in Zhangjiakou's Zhangbei county): fixed by
    the device alone, so the watch's SOS and its positions agree whatever the seed."""
    return {
        "lat": round(stable_uniform(0, 41.13, 41.19, device_id, "lat"), 6),
        "lon": round(stable_uniform(0, 114.68, 114.74, device_id, "lon"), 6),
    }


def rssi_of(seed: int, device_id: str, at: datetime) -> int:
    return -int(stable_uniform(seed, 55, 96, device_id, "rssi", int(at.timestamp())))


def routine(
    seed: int,
    device_id: str,
    model: DeviceModel,
    origin: datetime,
    start: datetime,
    end: datetime,
    zone: tzinfo,
) -> list[Emission]:
    """Everything the device does on its own in [start, end): heartbeats, activity, telemetry."""
    behaviour = BEHAVIOURS.get(model.name, QUIET)
    out = [
        Emission(at=moment, device_id=device_id, kind=Uplink.HEARTBEAT)
        for moment in heartbeat_times(seed, device_id, model.heartbeat_s, origin, start, end)
    ]
    if behaviour.climate_every_s:
        for moment in heartbeat_times(
            seed, device_id + "/climate", behaviour.climate_every_s, origin, start, end
        ):
            metrics = {
                "temperature_c": temperature_at(seed, device_id, moment, zone),
                "humidity": humidity_at(seed, device_id, moment),
            }
            out.append(
                Emission(
                    at=moment, device_id=device_id, kind=Uplink.TELEMETRY, body={"metrics": metrics}
                )
            )
    if behaviour.vitals_every_s:
        for moment in heartbeat_times(
            seed, device_id + "/vitals", behaviour.vitals_every_s, origin, start, end
        ):
            body = {"metrics": vitals_at(seed, device_id, moment)}
            out.append(Emission(at=moment, device_id=device_id, kind=Uplink.TELEMETRY, body=body))
    if behaviour.positions_every_s:
        where = home_location(device_id)
        for moment in heartbeat_times(
            seed, device_id + "/position", behaviour.positions_every_s, origin, start, end
        ):
            body = {"location": where}
            out.append(Emission(at=moment, device_id=device_id, kind=Uplink.HEARTBEAT, body=body))
    if behaviour.activity == "motion":
        hour = start.replace(minute=0, second=0, microsecond=0)
        while hour < end:
            rate = MOTION_PER_HOUR[hour.astimezone(zone).hour] * behaviour.activity_scale
            out += [
                _event(moment, device_id, "motion")
                for moment in motion_times(seed, device_id, hour, rate)
                if start <= moment < end
            ]
            hour += HOUR
    elif behaviour.activity in DAILY:
        daily = DAILY[behaviour.activity]
        day = start.astimezone(zone).date() - timedelta(days=1)
        while _local(day, 0, zone) < end:
            out += [
                _event(moment, device_id, kind)
                for moment, kind in daily(seed, device_id, day, zone)
                if start <= moment < end
            ]
            day += timedelta(days=1)
    return out


def _event(at: datetime, device_id: str, kind: str) -> Emission:
    return Emission(at=at, device_id=device_id, kind=Uplink.EVENT, body={"type": kind}, qos=1)
