"""The few telemetry points shown with an alert: what the device said around the call.

A dispatcher opening an alert must not wait on InfluxDB: the read gets a short deadline, and
an absent, slow or failing store gives no points (and a log line), never an error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timedelta
from typing import Any

import structlog

from ingest.telemetry.ports import TelemetryReader, TelemetryStoreError

log = structlog.get_logger(__name__)

# The day before the alert (a falling battery, a rising temperature) and the day after it.
BEFORE = timedelta(hours=24)
AFTER = timedelta(hours=24)
# As many points as the console's chart draws per alert.
MAX_POINTS = 300
DEADLINE_S = 1.5

# Bounded: at most this many reads in flight; a hung store cannot pile up threads.
_reads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alert-telemetry")


def recent_points(
    reader: TelemetryReader | None,
    device_id: str,
    raised_at: datetime,
    now: datetime,
    deadline_s: float = DEADLINE_S,
) -> list[dict[str, Any]]:
    """``{"time", "metric", "value"}`` of the device around ``raised_at``, oldest first."""
    if reader is None:
        return []
    start, end = raised_at - BEFORE, min(now, raised_at + AFTER)
    future = _reads.submit(reader.query, device_id, None, start, end, MAX_POINTS)
    try:
        points = future.result(timeout=deadline_s)
    except FutureTimeout:
        future.cancel()
        log.warning("alert.telemetry_slow", device_id=device_id, deadline_s=deadline_s)
        return []
    except TelemetryStoreError as exc:
        log.warning("alert.telemetry_unavailable", device_id=device_id, error=type(exc).__name__)
        return []
    return [{"time": p.time, "metric": p.metric, "value": p.value} for p in points]
