from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices.registry import Sighting
from ingest.registry_cache import SightingThrottle

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def seen(seconds: float, battery: float | None = None, device: str = "d1") -> Sighting:
    return Sighting(device_id=device, seen_at=T0 + timedelta(seconds=seconds), battery=battery)


def test_last_seen_is_written_at_the_resolution_and_news_at_once() -> None:
    throttle = SightingThrottle(resolution=timedelta(seconds=5))
    first = throttle.worth_writing([seen(0, battery=80)])
    assert first == [seen(0, battery=80)]
    throttle.written(first)
    assert throttle.worth_writing([seen(1), seen(4.9, battery=80)]) == []
    assert throttle.worth_writing([seen(5)]) == [seen(5)]
    assert throttle.worth_writing([seen(2, battery=79)]) == [seen(2, battery=79)]
    assert throttle.worth_writing([seen(1, device="d2")]) == [seen(1, device="d2")]


def test_nothing_counts_as_written_until_it_is() -> None:
    throttle = SightingThrottle()
    throttle.worth_writing([seen(0)])  # the batch failed: never reported as written
    assert throttle.worth_writing([seen(1)]) == [seen(1)]
