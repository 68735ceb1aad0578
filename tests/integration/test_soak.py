"""The soak benchmark's machinery, briefly (``make soak`` runs it for an hour): real
Mosquitto, real influxd, ``anxin serve`` as a subprocess, the paced publisher."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.soak.run import Sample, SoakOptions, growth_of, growth_over_second_half, run_soak

pytestmark = pytest.mark.integration


def test_a_short_soak_samples_and_finds_every_sos_and_heartbeat(tmp_path: Path) -> None:
    lines: list[str] = []
    options = SoakOptions(
        minutes=0.25,
        devices=50,
        rate=200,
        sos_interval_s=3,
        sample_s=5,
        drain_s=30,
        max_growth_pct=None,
        folder=tmp_path / "soak",
    )
    result = run_soak(options, out=lines.append)
    assert result.ok, "\n".join(lines)
    assert len(result.samples) >= 3  # at the start, then every 5 s
    assert all(s.rss_mib > 0 and s.inbox >= 0 for s in result.samples)
    assert result.heartbeats_published > 2000
    assert result.heartbeat_points == result.heartbeats_stored == result.heartbeats_published
    assert result.sos_sent >= 4
    assert result.sos_alerts == result.sos_sent == len(result.sos_ack_ms)
    assert any(line.startswith("RSS growth over the second half") for line in lines)


def sample(minute: float, rss: float) -> Sample:
    return Sample(
        minute=minute,
        rss_mib=rss,
        inbox=0,
        published=0,
        stored=0,
        batch_ms=None,
        sos_ack_ms_max=None,
        sos_acks=0,
        load1=0.0,
    )


def test_growth_is_measured_from_the_middle_of_the_run_to_its_end() -> None:
    samples = [sample(m, rss) for m, rss in enumerate([100, 150, 180, 200, 204, 206, 210])]
    assert growth_over_second_half(samples) == 5.0  # 200 at minute 3, 210 at minute 6
    assert growth_over_second_half(samples[:2]) is None


def test_each_process_has_its_own_growth() -> None:
    samples = [
        replace(sample(m, rss), rss={"gateway": rss, "serve": 100.0 + m})
        for m, rss in enumerate([100, 150, 180, 200, 204, 206, 210])
    ]
    assert growth_of(samples, "gateway") == 5.0
    assert growth_of(samples, "serve") == round((106 - 103) / 103 * 100, 2)
