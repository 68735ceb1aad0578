"""The telemetry shown with an alert never holds up the alert: slow or failing stores give []."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from api.recent_telemetry import AFTER, BEFORE, recent_points
from ingest.telemetry.ports import StoreUnavailableError, TelemetryPoint

RAISED = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


class Reader:
    def __init__(self, *, fail: bool = False, hang: threading.Event | None = None) -> None:
        self.asked: list[tuple[datetime, datetime, int]] = []
        self._fail, self._hang = fail, hang

    def query(
        self, device_id: str, metric: str | None, start: datetime, end: datetime, limit: int
    ) -> list[TelemetryPoint]:
        self.asked.append((start, end, limit))
        if self._hang is not None:
            self._hang.wait(10)
        if self._fail:
            raise StoreUnavailableError("influxd away")
        return [TelemetryPoint(time=start, metric="battery", value=40.0)]


def test_the_window_is_the_day_around_the_alert_and_never_the_future() -> None:
    reader = Reader()
    now = RAISED + timedelta(hours=1)
    points = recent_points(reader, "p-1", RAISED, now)
    assert reader.asked == [(RAISED - BEFORE, now, 300)]
    assert points == [{"time": RAISED - BEFORE, "metric": "battery", "value": 40.0}]
    reader.asked.clear()
    recent_points(reader, "p-1", RAISED, RAISED + timedelta(days=30))
    assert reader.asked == [(RAISED - BEFORE, RAISED + AFTER, 300)]


def test_no_store_a_failing_store_and_a_hung_store_give_no_points() -> None:
    assert recent_points(None, "p-1", RAISED, RAISED) == []
    assert recent_points(Reader(fail=True), "p-1", RAISED, RAISED) == []
    release = threading.Event()
    try:
        assert recent_points(Reader(hang=release), "p-1", RAISED, RAISED, deadline_s=0.05) == []
    finally:
        release.set()
