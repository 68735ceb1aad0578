"""Telemetry storage built from the settings: the store (v1 or v2 API), its writer and spool."""

from __future__ import annotations

from anxin.settings import ConfigError, Settings
from ingest.telemetry.ports import TelemetrySink
from ingest.telemetry.sink_v1 import InfluxV1
from ingest.telemetry.sink_v2 import InfluxV2
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import TelemetryWriter


def telemetry_store(settings: Settings) -> InfluxV1 | InfluxV2 | None:
    """The configured InfluxDB, or None: without ANXIN_INFLUX_URL telemetry is not stored."""
    if settings.influx_url is None:
        return None
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    if settings.influx_db is not None:
        return InfluxV1(
            settings.influx_url,
            settings.influx_db,
            token=token,
            timeout_s=settings.influx_timeout_s,
        )
    # Settings checked that v2 has all three.
    return InfluxV2(
        settings.influx_url,
        settings.influx_org or "",
        settings.influx_bucket or "",
        token or "",
        timeout_s=settings.influx_timeout_s,
    )


def telemetry_writer(settings: Settings, sink: TelemetrySink) -> TelemetryWriter:
    folder = settings.telemetry_spool_dir
    try:
        spool = Spool(folder, int(settings.influx_spool_max_mb * 1024 * 1024))
    except OSError as exc:
        problem = f"cannot use the telemetry spool folder {folder}: {exc.strerror}"
        raise ConfigError(problem) from exc
    return TelemetryWriter(
        sink,
        spool,
        batch_size=settings.influx_batch_size,
        flush_interval_s=settings.influx_flush_interval_s,
        buffer_points=settings.influx_buffer_points,
    )
