"""Faults 1 and 2: one of three ingest members killed (kill -9) during a burst of SOS presses.

Nothing may be lost or doubled, whether the member stays dead (a live member drains its broker
session) or comes back under its own client id (it takes its session back). The fleet does not
resend here: only the takeover can save what the dead member's session held.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.fleet import SosFleet, presses
from tests.faults.harness import count_sos, drain, in_thread, running_members, sos_alerts
from tests.faults.results import FaultResult, record, scaled
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SOS = scaled(1000, 10_000)
RATE = scaled(500.0, 1000.0)  # presses per second: 2 s bounded, 10 s full
GRACE_S = 5.0  # the default ANXIN_INGEST_TAKEOVER_GRACE_S


def _burst_with_a_kill(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str, *, restart: bool
) -> None:
    plan = presses([f"sos-{n:05d}" for n in range(SOS)])
    with running_members(tmp_path, mosquitto.url, database_url) as members:
        fleet = SosFleet(mosquitto.host, mosquitto.port)
        thread, box = in_thread(fleet, plan, RATE, within_s=120)
        while len(fleet.report.sent_ns) < SOS // 3:
            time.sleep(0.01)
        victim = members[1]
        victim.kill()
        killed_at = time.monotonic()
        if restart:
            # Back under its own id while a live member may be draining its session.
            time.sleep(GRACE_S + 0.5)
            victim.start()
            victim.wait_ready()
        thread.join(timeout=150)
        assert box, "the fleet did not finish"
        count = drain(plan, database_url, within_s=60)
        seconds = time.monotonic() - killed_at
        drained = members.drained()
        record(
            FaultResult(
                fault=(
                    "2 kill -9 of 1 of 3 members, restarted under its own id"
                    if restart
                    else "1 kill -9 of 1 of 3 members, not restarted"
                ),
                sent=SOS,
                lost=count.lost,
                duplicated=count.duplicated,
                unexpected=count.unexpected,
                recovered=drained,
                seconds=seconds,
                note=f"{count.alerts} alerts; takeovers drained {drained}",
            )
        )
        assert count.lost == 0, count
        assert count.duplicated == 0, count
        assert count.unexpected == 0, count
        if not restart:
            # The kill left messages in the dead member's session, and a takeover drained them:
            # without it they would be lost (the test can fail).
            assert drained > 0
        assert count_sos(plan, sos_alerts(database_url)).alerts == SOS


def test_a_member_killed_for_good_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    _burst_with_a_kill(tmp_path, mosquitto, database_url, restart=False)


def test_a_member_killed_and_restarted_under_its_own_id_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    _burst_with_a_kill(tmp_path, mosquitto, database_url, restart=True)
