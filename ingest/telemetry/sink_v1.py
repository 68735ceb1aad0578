"""InfluxDB's v1 API: ``/write`` and InfluxQL ``/query``, over httpx.

InfluxDB 1.x serves it, and so do 2.x (its compatibility API, with a token and a DBRP
mapping) and 3.x. influxdb-client is not used here: its v1 compatibility still posts to
``/api/v2/write``, which InfluxDB 1.x does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ingest.telemetry.points import HEARTBEAT, MEASUREMENTS, SEEN, TAG_KEYS, sanitized
from ingest.telemetry.ports import BatchRefusedError, StoreUnavailableError, TelemetryPoint

RETENTION_POLICY = "anxin"


class InfluxV1:
    """A database of InfluxDB over the v1 API: sink, reader and setup."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        parsed = httpx.URL(url)
        auth = None
        if parsed.username or parsed.password:
            auth = httpx.BasicAuth(parsed.username, parsed.password)
            parsed = parsed.copy_with(username=None, password=None)
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._database = database
        self._client = httpx.Client(
            base_url=str(parsed).rstrip("/"), auth=auth, headers=headers, timeout=timeout_s
        )

    @property
    def database(self) -> str:
        return self._database

    def write(self, body: bytes, on_sent: Callable[[], object] | None = None) -> None:
        # httpcore's trace hook tells when the body has left, before the answer.
        extensions = {} if on_sent is None else {"trace": _body_sent_trace(on_sent)}
        try:
            response = self._client.post(
                "/write",
                params={"db": self._database, "precision": "ms"},
                content=body,
                extensions=extensions,
            )
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        _check_write(response)

    def ping(self) -> bool:
        try:
            # Short: readiness probes wait on it (Kubernetes gives them 1 s by default).
            return self._client.get("/ping", timeout=0.5).status_code in (200, 204)
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()

    def query(
        self, device_id: str, metric: str | None, start: datetime, end: datetime, limit: int
    ) -> list[TelemetryPoint]:
        selected = "*" if metric is None else identifier(sanitized(metric))
        measurements = ",".join(identifier(m) for m in MEASUREMENTS)
        # Identifiers and strings are quoted and escaped by the two functions below.
        statement = (
            f"SELECT {selected} FROM {measurements}"  # noqa: S608 - InfluxQL, quoted
            f" WHERE {identifier('device_id')} = {string_literal(device_id)}"
            f" AND time >= {_epoch_ns(start)} AND time <= {_epoch_ns(end)}"
            f" ORDER BY time DESC LIMIT {int(limit)}"
        )
        points: list[TelemetryPoint] = []
        for series in self._influxql(statement, method="GET"):
            columns = series["columns"]
            skip = set(TAG_KEYS) | ({SEEN} if series["name"] == HEARTBEAT else set())
            for row in series.get("values", []):
                moment = datetime.fromtimestamp(row[0] / 1000, tz=UTC)
                for name, value in zip(columns[1:], row[1:], strict=True):
                    if name in skip or isinstance(value, bool | str) or value is None:
                        continue
                    points.append(TelemetryPoint(moment, name, float(value)))
        points.sort(key=lambda p: (p.time, p.metric), reverse=True)
        return sorted(points[:limit], key=lambda p: (p.time, p.metric))

    def create_database(self, retention_days: int) -> str:
        """Create the database and make ``anxin`` (``retention_days`` long) its default
        retention policy; again and again without harm. Says what it did."""
        database = identifier(self._database)
        self._influxql(f"CREATE DATABASE {database}")
        policies = self._influxql(f"SHOW RETENTION POLICIES ON {database}", method="GET")
        names = {row[0] for series in policies for row in series.get("values", [])}
        verb = "ALTER" if RETENTION_POLICY in names else "CREATE"
        replication = "" if verb == "ALTER" else " REPLICATION 1"
        self._influxql(
            f"{verb} RETENTION POLICY {identifier(RETENTION_POLICY)} ON {database}"
            f" DURATION {int(retention_days)}d{replication} DEFAULT"
        )
        return (
            f"InfluxDB database {self._database}: retention policy {RETENTION_POLICY} "
            f"({retention_days} days) is the default"
        )

    def _influxql(self, statement: str, method: str = "POST") -> list[dict[str, Any]]:
        params = {"db": self._database, "q": statement, "epoch": "ms"}
        try:
            if method == "GET":
                response = self._client.get("/query", params=params)
            else:
                response = self._client.post("/query", data=params)
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise StoreUnavailableError(f"HTTP {response.status_code}: {_error_text(response)}")
        result: dict[str, Any] = response.json()["results"][0]
        if "error" in result:
            raise StoreUnavailableError(str(result["error"]))
        series: list[dict[str, Any]] = result.get("series", [])
        return series


def _body_sent_trace(on_sent: Callable[[], object]) -> Callable[[str, object], None]:
    def trace(event: str, info: object) -> None:
        if event == "http11.send_request_body.complete":
            on_sent()

    return trace


def _check_write(response: httpx.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    detail = f"HTTP {status}: {_error_text(response)}"
    # 400: a line it could not parse or take (a "partial write": the others were written);
    # 413: a body over its limit. The same body would fail the same way.
    if status in (400, 413):
        raise BatchRefusedError(detail)
    # 401/403 (credentials), 404 (no database yet), 429, 5xx: later may work.
    raise StoreUnavailableError(detail)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))[:300]
    except ValueError:
        return response.text[:300]


def identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string_literal(text: str) -> str:
    """An InfluxQL single-quoted string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _epoch_ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000
