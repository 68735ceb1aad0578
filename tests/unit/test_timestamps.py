from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.timestamps import MAX_SKEW, event_time, occurrence, parse_device_ts

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


_MS_NOW = int(NOW.timestamp() * 1000)
_SKEW_MS = int(MAX_SKEW.total_seconds() * 1000)


@given(
    ts=st.one_of(
        # Epoch milliseconds near the server clock, at the skew's edges, and anywhere.
        st.integers(_MS_NOW - 2 * _SKEW_MS, _MS_NOW + 2 * _SKEW_MS),
        st.sampled_from([_MS_NOW + d for d in (-_SKEW_MS - 1, -_SKEW_MS, _SKEW_MS, _SKEW_MS + 1)]),
        st.integers(-(2**70), 2**70),
        # The short way's range edges: seconds below, milliseconds up to the year 9999.
        st.sampled_from([10**11, 10**11 + 1, 253_402_300_799_000, 253_402_300_799_001, 2**53]),
        st.floats(),
        st.booleans(),
        st.none(),
        st.sampled_from(["2026-11-22T03:09:30Z", "x"]),
    ),
    received_at=st.sampled_from([NOW, NOW + timedelta(microseconds=1)]),
)
def test_occurrence_is_event_times_time_and_skew(
    ts: float | str | None, received_at: datetime
) -> None:
    when = event_time(ts, received_at)
    occurred_at, skew_s = occurrence(ts, received_at)
    assert (occurred_at, skew_s) == (when.occurred_at, when.skew_s)
    assert type(skew_s) is type(when.skew_s)
    assert occurred_at.tzinfo is when.occurred_at.tzinfo
