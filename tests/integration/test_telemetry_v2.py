"""The v2 write path (influxdb-client to /api/v2/write) against a real server that serves it:
Debian's VictoriaMetrics. It stores each field as a series ``{measurement}_{field}`` with the
tags as labels, which /api/v1/export gives back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest.telemetry.points import Point
from ingest.telemetry.ports import StoreUnavailableError
from ingest.telemetry.sink_v2 import InfluxV2
from ingest.telemetry.spool import Spool
from ingest.telemetry.writer import TelemetryWriter
from tests.support.influx import running_victoria_metrics
from tests.support.service import wait_until

pytestmark = pytest.mark.integration

COMMUNITY = "张家口市/张北县/花园街道/幸福 社区,1=2"


def test_v2_writer_delivers_every_point(tmp_path: Path) -> None:
    # VictoriaMetrics keeps a month by default: points of now.
    t0 = int(time.time() * 1000) - 60_000
    n = 2500
    tags = {"community": COMMUNITY, "device_id": "w-1", "model": "smart-watch"}
    with running_victoria_metrics(tmp_path / "vm") as vm:
        sink = InfluxV2(vm.url, "anxin-org", "anxin", "a-token")
        assert sink.ping()
        writer = TelemetryWriter(
            sink, Spool(tmp_path / "spool", 1 << 24), batch_size=1000, flush_interval_s=0.1
        )
        writer.start()
        try:
            writer.submit(
                [
                    Point("telemetry", tags, {"heart_rate": float(i % 200), "心率": 1.5}, t0 + i)
                    for i in range(n)
                ]
            )

            def exported() -> list[dict[str, object]] | None:
                series = vm.export('{__name__=~"telemetry_.*"}')
                counts = [len(s["values"]) for s in series]  # type: ignore[arg-type]
                return series if counts == [n, n] else None

            series = wait_until(exported, within_s=30)
        finally:
            writer.stop()
    by_name = {s["metric"]["__name__"]: s for s in series}  # type: ignore[index]
    assert set(by_name) == {"telemetry_heart_rate", "telemetry_心率"}
    heart = by_name["telemetry_heart_rate"]
    assert heart["metric"] == {"__name__": "telemetry_heart_rate", **tags}
    assert heart["timestamps"] == [t0 + i for i in range(n)]
    assert heart["values"] == [float(i % 200) for i in range(n)]


def test_v2_store_away() -> None:
    sink = InfluxV2("http://127.0.0.1:9", "o", "b", "t", timeout_s=1)
    assert not sink.ping()
    with pytest.raises(StoreUnavailableError, match="Connection refused"):
        sink.write(b"m f=1 1")


def test_v2_outage_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    """Stop VictoriaMetrics, write N points, start it on the same port and data: all N there,
    each accepted once (VictoriaMetrics keeps duplicates, so a batch sent twice would show)."""
    t0 = int(time.time() * 1000) - 600_000
    n = 5000
    tags = {"device_id": "w-2", "model": "smart-watch"}
    with running_victoria_metrics(tmp_path / "vm") as vm:
        writer = TelemetryWriter(
            InfluxV2(vm.url, "o", "b", "t", timeout_s=2),
            Spool(tmp_path / "spool", 1 << 24),
            batch_size=500,
            flush_interval_s=0.1,
            retry_delay_s=lambda failures: 0.2,
        )
        writer.start()
        try:
            vm.stop()
            writer.submit([Point("heartbeat", tags, {"seen": 1}, t0 + i) for i in range(n)])
            wait_until(lambda: writer.spool.points == n or None, within_s=30)
            vm.start()
            wait_until(lambda: writer.spool.points == 0 or None, within_s=60)
        finally:
            writer.stop()

        def exported() -> list[int] | None:
            series = vm.export('{__name__="heartbeat_seen", device_id="w-2"}')
            times = [t for s in series for t in s["timestamps"]]  # type: ignore[attr-defined]
            return times if len(times) >= n else None

        times = wait_until(exported, within_s=30)
    assert sorted(times) == [t0 + i for i in range(n)]
