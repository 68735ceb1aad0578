"""Query text for the telemetry store: InfluxQL and Flux quoting, and the API's times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException

from api.routes.telemetry import parse_moment
from ingest.telemetry.sink_v1 import identifier, string_literal
from ingest.telemetry.sink_v2 import flux_query, flux_string

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_influxql_quoting() -> None:
    assert identifier('温度 "c"\\') == '"温度 \\"c\\"\\\\"'
    assert string_literal("it's\\") == "'it\\'s\\\\'"


def test_flux_quoting_and_query() -> None:
    assert flux_string('a"b\\c${x}') == '"a\\"b\\\\c\\${x}"'
    query = flux_query("anxin", "w-1", '体温"', NOW - timedelta(hours=1), NOW, 100)
    assert 'from(bucket: "anxin")' in query
    start_ns = int((NOW - timedelta(hours=1)).timestamp()) * 10**9
    stop_ns = int(NOW.timestamp()) * 10**9 + 10**6  # stop is exclusive: end + 1 ms
    assert f"range(start: time(v: {start_ns}), stop: time(v: {stop_ns}))" in query
    assert 'r.device_id == "w-1"' in query
    assert 'r._field == "体温\\""' in query
    assert query.endswith("limit(n: 100)")
    every = flux_query("anxin", "w-1", None, NOW, NOW, 5)
    assert 'r._field != "seen" or r._measurement != "heartbeat"' in every


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-24h", NOW - timedelta(hours=24)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-7d", NOW - timedelta(days=7)),
        ("-2w", NOW - timedelta(weeks=2)),
        ("-500ms", NOW - timedelta(milliseconds=500)),
        ("2026-11-22T10:00:00+08:00", datetime(2026, 11, 22, 2, 0, tzinfo=UTC)),
        ("2026-11-22T02:00:00Z", datetime(2026, 11, 22, 2, 0, tzinfo=UTC)),
    ],
)
def test_moments(text: str, expected: datetime) -> None:
    assert parse_moment(text, NOW, "start") == expected


@pytest.mark.parametrize("text", ["yesterday", "24h", "-h", "2026-11-22T02:00:00", "+1h", ""])
def test_bad_moments(text: str) -> None:
    with pytest.raises(HTTPException) as caught:
        parse_moment(text, NOW, "end")
    assert caught.value.status_code == 422
    assert str(caught.value.detail).startswith("end: ")
