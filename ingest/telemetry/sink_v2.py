"""InfluxDB's v2 API (``/api/v2/write``: org, bucket, token) through influxdb-client.

Writes are synchronous calls on the writer's own thread: the batching, retries and spool are
anxin's (``writer.py``), so that an outage spools to disk instead of growing the client's
memory. Reads use Flux (``/api/v2/query``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import httpx
import urllib3
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from ingest.telemetry.points import HEARTBEAT, MEASUREMENTS, SEEN, sanitized
from ingest.telemetry.ports import BatchRefusedError, StoreUnavailableError, TelemetryPoint


class InfluxV2:
    """A bucket of InfluxDB over the v2 API: sink and reader."""

    def __init__(
        self, url: str, org: str, bucket: str, token: str, *, timeout_s: float = 10.0
    ) -> None:
        self._url, self._org, self._bucket = url.rstrip("/"), org, bucket
        # retries=False (the client's default): a failure comes back at once, to the spool.
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, body: bytes, on_sent: Callable[[], object] | None = None) -> None:
        if on_sent is not None:  # influxdb-client does not tell when the body has left
            on_sent()
        try:
            self._write_api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                # The constant is declared as str; the parameter wants the class.
                write_precision=cast(WritePrecision, WritePrecision.MS),
            )
        except InfluxDBError as exc:
            status = exc.response.status if exc.response is not None else None
            detail = f"HTTP {status}: {exc.message}"[:300]
            # 400 (a line it will not take) and 413 (too large) fail again the same way.
            if status in (400, 413):
                raise BatchRefusedError(detail) from exc
            raise StoreUnavailableError(detail) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}"[:300]) from exc

    def ping(self) -> bool:
        # httpx, for a short timeout: readiness probes wait on it.
        try:
            return httpx.get(f"{self._url}/ping", timeout=0.5).status_code in (200, 204)
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()

    def query(
        self, device_id: str, metric: str | None, start: datetime, end: datetime, limit: int
    ) -> list[TelemetryPoint]:
        flux = flux_query(self._bucket, device_id, metric, start, end, limit)
        try:
            tables = self._client.query_api().query(flux, org=self._org)
        except (InfluxDBError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        points = [
            TelemetryPoint(
                record.get_time().astimezone(UTC), record.get_field(), float(record.get_value())
            )
            for table in tables
            for record in table.records
            if isinstance(record.get_value(), int | float)
            and not isinstance(record.get_value(), bool)
        ]
        points.sort(key=lambda p: (p.time, p.metric), reverse=True)
        return sorted(points[:limit], key=lambda p: (p.time, p.metric))


def flux_string(text: str) -> str:
    """A Flux string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def flux_query(
    bucket: str, device_id: str, metric: str | None, start: datetime, end: datetime, limit: int
) -> str:
    """The device's points; ``stop`` is exclusive in Flux, so 1 ms is added to ``end``."""
    measurements = " or ".join(f"r._measurement == {flux_string(m)}" for m in MEASUREMENTS)
    field = (
        f'r._field != "{SEEN}" or r._measurement != "{HEARTBEAT}"'
        if metric is None
        else f"r._field == {flux_string(sanitized(metric))}"
    )
    # time(v: int) reads nanoseconds since the epoch.
    start_ns = int(start.timestamp() * 1000) * 1_000_000
    stop_ns = (int(end.timestamp() * 1000) + 1) * 1_000_000
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: time(v: {start_ns}), stop: time(v: {stop_ns}))\n"
        f"  |> filter(fn: (r) => {measurements})\n"
        f"  |> filter(fn: (r) => r.device_id == {flux_string(device_id)})\n"
        f"  |> filter(fn: (r) => {field})\n"
        f"  |> group()\n"
        f'  |> sort(columns: ["_time"], desc: true)\n'
        f"  |> limit(n: {int(limit)})"
    )
