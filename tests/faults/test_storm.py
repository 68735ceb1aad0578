"""Fault 7: an alarm storm. 10 000 SOS in 10 s from as many devices, and one stuck button
pressing 100 times among them, into three ingest members; a dispatcher's alert stream on an
API process of its own. Every SOS reaches the stream, the 99th percentile from publish to the
stream within 2 s, and the stuck button is one alert that counts its 100 presses.

The stuck button's 100 presses in 10 s are more than the default rate limit counts (30 a
minute, docs/alert-rules.md): the rules here allow 100, so that the count shows every press
stored once, across the members.
"""

from __future__ import annotations

import json
import queue
import statistics
import time
from pathlib import Path

import pytest

from tests.faults.fleet import SosFleet, presses
from tests.faults.harness import Member, drain, in_thread, running_members, stored_at
from tests.faults.results import FaultResult, record, scaled
from tests.support.api_world import event_stream
from tests.support.mosquitto import Mosquitto
from tests.support.service import AnxinEnv, anxin_env

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SOS = scaled(2000, 10_000)
WITHIN_S = scaled(2.0, 10.0)
STUCK_PRESSES = 100
# The 2 s is judged at its size (`make faults`). Inside `make test` the suite shares the
# machine with whatever else runs, so the bound there only catches a stream that stalls.
P99_LIMIT_S = scaled(10.0, 2.0)


def test_an_alarm_storm_reaches_the_stream_in_time(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[rate_limit]\nper_device_per_minute = 100\n")
    stuck = "stuck-button"
    plan = presses([f"storm-{n:05d}" for n in range(SOS)], stuck, STUCK_PRESSES)
    api = Member(
        name="api",
        folder=tmp_path / "api",
        env=anxin_env(
            tmp_path / "api",
            ANXIN_DATABASE_URL=database_url,
            ANXIN_RULES_FILE=str(rules),
            ANXIN_SSE_BACKLOG="100000",
        ).env,
        command="api",
    )
    admin = AnxinEnv(folder=api.folder, env=api.env)
    admin.add_user("storm", "storm-password")
    with running_members(tmp_path, mosquitto.url, database_url, ANXIN_RULES_FILE=str(rules)):
        api.start()
        try:
            api.wait_ready()
            headers = {"Authorization": f"Bearer {admin.token('storm', 'storm-password')}"}
            with event_stream(f"{api.api_url}/api/v1/alerts/stream", headers) as stream:
                fleet = SosFleet(mosquitto.host, mosquitto.port)
                thread, box = in_thread(fleet, plan, len(plan) / WITHIN_S, within_s=120)
                created: dict[str, int] = {}
                deadline = time.monotonic() + 60
                while len(created) < SOS + 1 and time.monotonic() < deadline:
                    try:
                        event = stream.next(within_s=max(0.1, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if event.event == "alert.created":
                        device = json.loads(event.data)["alert"]["device_id"]
                        created.setdefault(device, time.monotonic_ns())
                thread.join(timeout=60)
                assert box, "the fleet did not finish"
        finally:
            api.stop()
        count = drain(plan, database_url, within_s=30)
        report = box[0]
        latencies = sorted(
            (created[p.device] - report.sent_ns[p]) / 1e9
            for p in plan
            if p.device != stuck and p.device in created
        )
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
        p50 = statistics.median(latencies) if latencies else float("inf")
        stored = stored_at(database_url)
        to_store = sorted(
            stored[p.device] - report.sent_wall[p]
            for p in plan
            if p.device != stuck and p.device in stored
        )
        store_p99 = to_store[int(len(to_store) * 0.99) - 1] if to_store else float("inf")
        span = (max(report.sent_ns.values()) - min(report.sent_ns.values())) / 1e9
        record(
            FaultResult(
                fault="7 alarm storm + a stuck button pressing 100 times",
                sent=len(plan),
                lost=count.lost,
                duplicated=count.duplicated,
                unexpected=count.unexpected,
                recovered=0,
                seconds=span,
                note=(
                    f"published in {span:.1f} s; publish→SSE p50 {p50:.2f} s, p99 {p99:.2f} s "
                    f"(→stored p99 {store_p99:.2f} s); "
                    f"{len(created)} alerts streamed; stuck button: {count.alerts - SOS} alert"
                ),
            )
        )
        assert (count.lost, count.duplicated, count.unexpected) == (0, 0, 0), count
        assert len(created) == SOS + 1  # every SOS reached the stream
        assert count.alerts == SOS + 1  # the stuck button is one alert: the count says 100
        assert p99 <= P99_LIMIT_S, f"p99 {p99:.2f} s"
