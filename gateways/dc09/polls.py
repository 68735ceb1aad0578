"""The NULL polls already made safe, the last one of each account. Pure.

A hub that gets no ACK in time (its timeout, or the connection closed) sends the same poll
again: the same account, sequence number and timestamp. That resend is ACKed again but not
published again, so a poll is one heartbeat, as a resent event is one occurrence (its stable
``seq``). Only a poll whose heartbeat was PUBACKed is remembered: the resend of one that was
not is published, so nothing is ACKed before it is safe. One entry per account of the accounts
file (an unknown account is NAKed first), so the table is bounded by that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# A resend comes within seconds (a panel's reply timeout is 15–30 s); the same poll later than
# this is counted again (a hub whose clock stands still sends the same timestamp every poll).
RESEND_WITHIN_S = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Poll:
    """What tells one NULL poll from the next: a poll without a timestamp has no such key."""

    account: str
    seq: str
    timestamp: datetime


class SafePolls:
    def __init__(self, within_s: float = RESEND_WITHIN_S) -> None:
        self.within_s = within_s
        self._last: dict[str, tuple[Poll, datetime]] = {}  # account → its last safe poll, when

    def __len__(self) -> int:
        return len(self._last)

    def is_resend(self, poll: Poll, now: datetime) -> bool:
        """True when ``poll`` is the account's last safe poll, made safe within ``within_s``."""
        last = self._last.get(poll.account)
        return (
            last is not None
            and last[0] == poll
            and 0 <= (now - last[1]).total_seconds() <= self.within_s
        )

    def remember(self, poll: Poll, now: datetime) -> None:
        """``poll``'s heartbeat is safe (PUBACKed)."""
        self._last[poll.account] = (poll, now)
