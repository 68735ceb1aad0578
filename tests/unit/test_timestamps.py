from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.timestamps import event_time, parse_device_ts

NOW = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "ts",
    ["2026-11-22T03:09:30Z", "2026-11-22T11:09:30+08:00", NOW.timestamp() - 30,
     (NOW.timestamp() - 30) * 1000],
)  # fmt: skip
def test_a_device_clock_within_ten_minutes_is_used(ts: float | str) -> None:
    when = event_time(ts, NOW)
    assert when.used_device_clock
    assert when.occurred_at == NOW - timedelta(seconds=30)
    assert when.skew_s == pytest.approx(-30)


def test_a_clock_more_than_ten_minutes_off_is_replaced_and_the_skew_recorded() -> None:
    when = event_time("2026-11-22T04:10:00Z", NOW)
    assert not when.used_device_clock
    assert when.occurred_at == NOW
    assert when.skew_s == 3600


@pytest.mark.parametrize("ts", [None, "yesterday", "2026-11-22T03:10:00", -5, float("nan"), 1e300])
def test_no_usable_ts_means_receive_time_and_no_skew(ts: float | str | None) -> None:
    when = event_time(ts, NOW)
    assert when.occurred_at == NOW
    assert when.skew_s is None


def test_naive_text_is_not_guessed() -> None:
    assert parse_device_ts("2026-11-22T03:10:00") is None


def test_a_huge_integer_ts_is_no_usable_ts() -> None:
    assert parse_device_ts(10**400) is None
    assert event_time(10**400, NOW).occurred_at == NOW
