"""Telemetry against a real InfluxDB 1.6 (Debian's influxd, started per test module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.telemetry.points import Point, encode_batch, sanitized
from ingest.telemetry.ports import BatchRefusedError, StoreUnavailableError
from ingest.telemetry.sink_v1 import InfluxV1
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import TelemetryWriter
from tests.support.influx import InfluxServer
from tests.support.service import wait_until

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms


texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" ,=\"'\\\n\r\t#中文社区")),
        st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs",)),
    ),
    min_size=1,
    max_size=20,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(community=texts, metric=texts, note=texts)
def test_names_and_values_come_back_as_written(
    influxd: InfluxServer, influx_database: str, community: str, metric: str, note: str
) -> None:
    """Hypothesis writes Chinese text and every special character to influxd and reads it
    back: tags and field names come back as written (but the documented stand-ins for
    backslashes and line breaks), string fields exactly."""
    if sanitized(metric) in ("time", "note", "seen"):
        return
    sink = InfluxV1(influxd.url, influx_database)
    device = f"d{abs(hash((community, metric, note)))}"
    point = Point(
        "telemetry",
        {"community": community, "device_id": device, "model": "型号 x"},
        {metric: 36.6, "note": note},
        T0,
    )
    encoded = encode_batch([point])
    assert encoded is not None
    sink.write(encoded.body)
    query = f"SELECT * FROM telemetry WHERE device_id = '{device}'"  # noqa: S608 - our own id
    [series] = influxd.query(influx_database, query)
    values = zip(series["columns"], series["values"][0], strict=True)  # type: ignore[call-overload]
    # Other examples' fields are columns too, empty on this row.
    row = {name: value for name, value in values if value is not None}
    assert row == {
        "time": T0,
        "community": sanitized(community),
        "device_id": device,
        "model": "型号 x",
        sanitized(metric): 36.6,
        "note": note,
    }
    sink.close()


def _points(start: int, count: int) -> list[Point]:
    tags = {
        "community": "张家口市/张北县/花园街道/幸福社区",
        "device_id": "w-1",
        "model": "smart-watch",
    }
    return [
        Point("heartbeat", tags, {"seen": 1, "battery": 50.0}, T0 + i)
        for i in range(start, start + count)
    ]


def _stored(influxd: InfluxServer, influx_database: str) -> list[int]:
    series = influxd.query(influx_database, "SELECT seen FROM heartbeat")
    return [row[0] for s in series for row in s["values"]]  # type: ignore[attr-defined]


def test_outage_nothing_lost_nothing_twice(
    influxd: InfluxServer, influx_database: str, tmp_path: Path
) -> None:
    """Stop influxd, write N points, start it on the same port and data: all N are there, once.

    InfluxDB itself would hide a point written twice (same series and time: one point), so the
    sink also notes every point influxd accepted: each exactly once."""
    n = 12_345
    accepted: list[int] = []

    class NotingSink(InfluxV1):
        def write(self, body: bytes, on_sent: Callable[[], object] | None = None) -> None:
            super().write(body, on_sent)
            accepted.extend(int(line.rsplit(b" ", 1)[1]) for line in body.splitlines())

    writer = TelemetryWriter(
        NotingSink(influxd.url, influx_database, timeout_s=2),
        Spool(tmp_path / "spool", 64 << 20),
        batch_size=1000,
        flush_interval_s=0.1,
        retry_delay_s=lambda failures: 0.2,
    )
    writer.start()
    try:
        writer.submit(_points(0, 500))
        # Accepted, not only stored: influxd has been seen to store a batch and answer 500
        # ("write failed") when the machine is busy, and then the writer rightly sends it again.
        wait_until(lambda: len(accepted) == 500 or None, within_s=20)
        influxd.stop()
        for start in range(500, n, 1000):
            writer.submit(_points(start, min(1000, n - start)))
        wait_until(lambda: writer.spool.points == n - 500 or None, within_s=20)
        spooled = writer.spool.points
        influxd.start()
        wait_until(lambda: writer.spool.points == 0 or None, within_s=60)
    finally:
        writer.stop()
        if influxd.process is None:  # failed while it was stopped: the next tests need it
            influxd.start()
    stored = _stored(influxd, influx_database)
    assert len(stored) == n
    assert sorted(stored) == [T0 + i for i in range(n)]
    assert sorted(accepted) == [T0 + i for i in range(n)]  # none sent twice
    print(  # shown by `pytest -s`: the figures of the outage
        f"\noutage: {n} points submitted, {spooled} spooled while influxd was stopped, "
        f"{len(stored)} in influxd after its restart; influxd accepted {len(accepted)} points "
        f"from the writer, {len(accepted) - len(set(accepted))} of them twice"
    )


def test_spool_survives_a_restart_of_anxin(
    influxd: InfluxServer, influx_database: str, tmp_path: Path
) -> None:
    """Points spooled while influxd was down are written by the next process to start."""
    influxd.stop()
    try:
        first = TelemetryWriter(
            InfluxV1(influxd.url, influx_database, timeout_s=1),
            Spool(tmp_path / "spool", 64 << 20),
            batch_size=100,
        )
        first.submit(_points(0, 250))
        first.stop()  # influxd is down: the buffer goes to the spool
    finally:
        influxd.start()
    second = TelemetryWriter(
        InfluxV1(influxd.url, influx_database), Spool(tmp_path / "spool", 64 << 20), batch_size=100
    )
    assert second.spool.points == 250
    second.start()
    try:
        wait_until(lambda: second.spool.points == 0 or None, within_s=20)
    finally:
        second.stop()
    assert sorted(_stored(influxd, influx_database)) == [T0 + i for i in range(250)]


def test_errors_are_told_apart(influxd: InfluxServer, influx_database: str) -> None:
    with pytest.raises(StoreUnavailableError, match="404"):
        InfluxV1(influxd.url, "no_such_database").write(b"m f=1 1")
    with pytest.raises(BatchRefusedError, match="400"):
        InfluxV1(influxd.url, influx_database).write(b"m f=1 1\nthis is not line protocol")
    with pytest.raises(StoreUnavailableError, match="Connect"):
        InfluxV1("http://127.0.0.1:9", influx_database, timeout_s=1).write(b"m f=1 1")
    assert InfluxV1(influxd.url, influx_database).ping()
    assert not InfluxV1("http://127.0.0.1:9", influx_database).ping()


def test_the_sink_tells_once_that_the_body_is_out(
    influxd: InfluxServer, influx_database: str
) -> None:
    """The writer encodes the next batch from then on (when, exactly: test_sink_v1_sent.py)."""
    told: list[str] = []
    sink = InfluxV1(influxd.url, influx_database)
    sink.write(b"out seen=1i %d" % T0, on_sent=lambda: told.append("out"))
    assert told == ["out"]
    assert influxd.query(influx_database, "SELECT seen FROM out")
    with pytest.raises(StoreUnavailableError):  # no body went out: not told
        InfluxV1("http://127.0.0.1:9", influx_database, timeout_s=1).write(
            b"out seen=1i 1", on_sent=lambda: told.append("refused")
        )
    assert told == ["out"]


def test_create_database_with_retention_policy(influxd: InfluxServer) -> None:
    store = InfluxV1(influxd.url, "setup_test")
    assert "400 days" in store.create_database(400)
    assert "30 days" in store.create_database(30)  # again: changed, not an error
    [series] = influxd.query("setup_test", 'SHOW RETENTION POLICIES ON "setup_test"')
    rows = {row[0]: row for row in series["values"]}  # type: ignore[attr-defined]
    assert rows["anxin"][1] == "720h0m0s"
    assert rows["anxin"][-1] is True  # default


def test_reader_returns_the_devices_points(influxd: InfluxServer, influx_database: str) -> None:
    store = InfluxV1(influxd.url, influx_database)
    tags = {"device_id": "w-9", "model": "smart-watch"}
    other = {"device_id": "w-10", "model": "smart-watch"}
    points = [
        Point("heartbeat", tags, {"seen": 1, "battery": 90.0, "rssi": -70.0}, T0),
        Point("telemetry", tags, {"heart_rate": 72.0, "温度 c": 36.5}, T0 + 1000),
        Point("telemetry", tags, {"heart_rate": 75.0}, T0 + 2000),
        Point("telemetry", other, {"heart_rate": 120.0}, T0 + 1500),
    ]
    encoded = encode_batch(points)
    assert encoded is not None
    store.write(encoded.body)
    start = datetime.fromtimestamp(T0 / 1000, UTC)
    end = start + timedelta(seconds=10)
    got = store.query("w-9", "heart_rate", start, end, 100)
    assert [(p.time - start, p.metric, p.value) for p in got] == [
        (timedelta(seconds=1), "heart_rate", 72.0),
        (timedelta(seconds=2), "heart_rate", 75.0),
    ]
    every = store.query("w-9", None, start, end, 100)
    assert {(p.metric, p.value) for p in every} == {
        ("battery", 90.0),
        ("rssi", -70.0),
        ("heart_rate", 72.0),
        ("温度 c", 36.5),
        ("heart_rate", 75.0),
    }
    assert [p.value for p in store.query("w-9", "heart_rate", start, end, 1)] == [75.0]  # newest
    assert store.query("w-9", "温度 c", start, start, 100) == []
    assert store.query("w-9", 'x" OR 1=1 --', start, end, 100) == []
