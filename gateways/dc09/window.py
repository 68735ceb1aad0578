"""The timestamp window (``ANXIN_DC09_TIMESTAMP_WINDOW``) and the listen address. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

_USAGE = "give 'PAST,FUTURE' seconds (e.g. '40,20') or 'off'"


@dataclass(frozen=True, kw_only=True, slots=True)
class TimestampWindow:
    """Accepted timestamps: from ``past_s`` before the receiver's clock to ``future_s`` after."""

    past_s: float = 40
    future_s: float = 20

    def holds(self, stamp: datetime, now: datetime) -> bool:
        return -self.past_s <= (stamp - now).total_seconds() <= self.future_s


def parse_window(text: str) -> TimestampWindow | None:
    """``"40,20"`` (seconds past, future) → a window; ``"off"`` → None (any time)."""
    if text.strip().lower() == "off":
        return None
    past, sep, future = text.partition(",")
    try:
        window = TimestampWindow(past_s=float(past), future_s=float(future))
    except ValueError:
        raise ValueError(f"{text!r}: {_USAGE}") from None
    if not sep or not 0 <= window.past_s <= 86400 or not 0 <= window.future_s <= 86400:
        raise ValueError(f"{text!r}: {_USAGE}, each 0 to 86400")
    return window


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9009`` for IPv6) → (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: give host:port, e.g. 0.0.0.0:9009")
    return host, int(port)
