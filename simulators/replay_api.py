"""A platform read through its HTTP API, for ``anxin replay --api``: an engineer who reaches a
staging instance only by MQTT and HTTP learns what the replay raised there.

Before publishing, the server's own clock (its ``Date`` header); after, the probe's dead letter
(``GET /api/v1/dead-letters``: ingest has handled everything published before it) and the alerts
created since (``GET /api/v1/alerts?status=all&since=…``). The token is an engineer's or an
admin's: only they read dead letters, and an admin sees every community's alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

# The fields of `anxin replay --json` (contract §3), as the API names them.
FIELDS = (
    "id", "device_id", "elder_id", "type", "category", "priority", "status", "count",
    "created_at", "occurred_at", "last_occurred_at", "resolved_at",
)  # fmt: skip
PAGE = 200


class ApiError(Exception):
    """The API could not be used: the message says why, without the token."""


class PlatformApi:
    def __init__(self, url: str, token: str, *, timeout_s: float = 15.0) -> None:
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )

    @classmethod
    def login(cls, url: str, username: str, password: str) -> PlatformApi:
        """``POST /api/v1/auth/token`` with the user's password: the token for the rest."""
        try:
            response = httpx.post(
                f"{url.rstrip('/')}/api/v1/auth/token",
                data={"username": username, "password": password},
                timeout=15.0,
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach {url}: {exc}") from exc
        if response.status_code != 200:
            raise ApiError(f"{url}: login as {username} refused ({response.status_code})")
        return cls(url, str(response.json()["access_token"]))

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach {self._client.base_url}: {exc}") from exc
        if response.status_code == 401:
            raise ApiError(f"{self._client.base_url}: the token was refused (401)")
        if response.status_code == 403:
            raise ApiError(
                f"{self._client.base_url}{path}: this user's role may not read it (403);"
                " replay --api needs an engineer's or an admin's token"
            )
        if response.status_code != 200:
            raise ApiError(f"{self._client.base_url}{path}: {response.status_code}")
        return response

    def server_time(self) -> datetime:
        """The server's clock (alerts' created_at is its), to the second, a second early."""
        response = self._get("/api/v1/alerts", {"limit": 1})
        date = response.headers.get("date")
        if date is None:
            return datetime.now(UTC) - timedelta(seconds=1)
        return parsedate_to_datetime(date).astimezone(UTC) - timedelta(seconds=1)

    def handled(self, device_id: str) -> bool:
        """Has ingest stored the probe's dead letter?"""
        page = self._get("/api/v1/dead-letters", {"device_id": device_id, "limit": 1}).json()
        return bool(page["items"])

    def alerts_since(self, since: datetime, known: set[int] | None = None) -> list[dict[str, Any]]:
        """Alerts created at or after ``since`` (every status), by id; ``known``: ids open
        before the replay, left out."""
        alerts: list[dict[str, Any]] = []
        params: dict[str, Any] = {"status": "all", "since": since.isoformat(), "limit": PAGE}
        while True:
            page = self._get("/api/v1/alerts", params).json()
            alerts.extend(page["items"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        skip = known or set()
        return [
            {name: _when(name, item.get(name)) for name in FIELDS}
            for item in sorted(alerts, key=lambda a: a["id"])
            if item["id"] not in skip
        ]

    def alert_ids_since(self, since: datetime) -> set[int]:
        return {a["id"] for a in self.alerts_since(since)}


def _when(name: str, value: Any) -> Any:
    """Times as the database path prints them (``+00:00``, not ``Z``)."""
    if name.endswith("_at") and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    return value
