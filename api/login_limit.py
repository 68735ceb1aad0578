"""How often a login may fail: per user and per client address, in a sliding window. Pure (the
clock comes in); one per API process.

Password guessing against one account, or from one address against many, is slowed to a few
tries per window: once ``max_per_user`` failures for a username (or ``max_per_client`` from an
address) fall within ``window``, further logins are refused with 429 and ``Retry-After`` until
the oldest failure leaves the window, without the password being checked (an Argon2 check
costs the server ~0.2 s of a core). A successful login clears that user's failures. The
window's memory is bounded: at most ``max_keys`` usernames and addresses are remembered, the
stalest forgotten first.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, kw_only=True, slots=True)
class LoginPolicy:
    window: timedelta = timedelta(minutes=5)
    # A dispatcher mistyping at the start of a shift gets 5 tries in 5 minutes.
    max_per_user: int = 5
    # An office behind one address: its dispatchers' mistypes together.
    max_per_client: int = 20
    max_keys: int = 10_000


class LoginLimiter:
    def __init__(self, policy: LoginPolicy | None = None) -> None:
        self.policy = policy or LoginPolicy()
        self._failures: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()

    def retry_after(self, username: str, client: str, now: datetime) -> int | None:
        """Seconds to wait before trying again, or None: the login may be tried."""
        waits = [
            self._wait(("user", username.casefold()), self.policy.max_per_user, now),
            self._wait(("client", client), self.policy.max_per_client, now),
        ]
        found = [w for w in waits if w is not None]
        return max(found) if found else None

    def failed(self, username: str, client: str, now: datetime) -> None:
        for key in (("user", username.casefold()), ("client", client)):
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            self._failures[key] = times  # most recent last
        while len(self._failures) > self.policy.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        self._failures.pop(("user", username.casefold()), None)

    def _wait(self, key: tuple[str, str], limit: int, now: datetime) -> int | None:
        times = self._failures.get(key)
        if not times:
            return None
        while times and times[0] <= now - self.policy.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < limit:
            return None
        # Free again once enough failures have left the window.
        freed = times[len(times) - limit] + self.policy.window
        return max(1, math.ceil((freed - now).total_seconds()))
