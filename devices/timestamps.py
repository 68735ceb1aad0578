"""Device clocks are not trusted: choose when a message happened, and record the skew."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_SKEW = timedelta(minutes=10)
# Epoch numbers above this are milliseconds (1e11 s is the year 5138).
_MILLISECONDS_ABOVE = 1e11
# The last epoch millisecond a datetime holds (9999-12-31T23:59:59Z); below 2**53, so a float
# holds each of them exactly.
_MILLISECONDS_MAX = 253_402_300_799_000


# Not frozen: one is made per message, and a frozen dataclass's __init__ costs three times as
# much. Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class EventTime:
    occurred_at: datetime
    # Device clock minus server clock in seconds; None when the device sent no usable ts.
    skew_s: float | None
    used_device_clock: bool


def parse_device_ts(ts: float | str) -> datetime | None:
    """RFC 3339 text, or epoch seconds / milliseconds; None if it is neither."""
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    if isinstance(ts, bool):
        return None
    try:
        ts = float(ts)  # a JSON integer may have hundreds of digits
    except OverflowError:
        return None
    if not math.isfinite(ts) or ts < 0:
        return None
    seconds = ts / 1000 if ts > _MILLISECONDS_ABOVE else ts
    try:
        return datetime.fromtimestamp(seconds, UTC)  # positional: a third cheaper than tz=
    except (OverflowError, OSError, ValueError):
        return None


def event_time(ts: float | str | None, received_at: datetime) -> EventTime:
    """Use the device's ts when it is within ``MAX_SKEW`` of the server clock."""
    device_time = None if ts is None else parse_device_ts(ts)
    if device_time is None:
        return EventTime(occurred_at=received_at, skew_s=None, used_device_clock=False)
    skew = device_time - received_at
    if abs(skew) > MAX_SKEW:
        return EventTime(
            occurred_at=received_at, skew_s=skew.total_seconds(), used_device_clock=False
        )
    return EventTime(
        # An epoch number is read as UTC already: no second datetime made for it.
        occurred_at=device_time if device_time.tzinfo is UTC else device_time.astimezone(UTC),
        skew_s=skew.total_seconds(),
        used_device_clock=True,
    )


def occurrence(ts: float | str | None, received_at: datetime) -> tuple[datetime, float | None]:
    """``event_time``'s occurred_at and skew_s, without its EventTime. Integer epoch
    milliseconds (what most devices send) the short way: the checks parse_device_ts would
    pass are known passed (tests/unit/test_timestamps.py holds the two ways equal)."""
    if type(ts) is int and _MILLISECONDS_ABOVE < ts <= _MILLISECONDS_MAX:
        device_time = datetime.fromtimestamp(ts / 1000, UTC)
        skew = device_time - received_at
        return received_at if abs(skew) > MAX_SKEW else device_time, skew.total_seconds()
    when = event_time(ts, received_at)
    return when.occurred_at, when.skew_s
