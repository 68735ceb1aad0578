"""Fault 4: PostgreSQL restarted during a burst of SOS into three members. Nothing is lost: a
batch is acknowledged to the broker only once committed, so what could not be stored stays
with the broker until the database is back. The devices do not resend here.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.database import restartable_postgres
from tests.faults.fleet import SosFleet, presses
from tests.faults.harness import drain, in_thread, migrated, running_members
from tests.faults.results import FaultResult, record, scaled
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SOS = scaled(1000, 10_000)
RATE = scaled(200.0, 500.0)  # 5 s bounded, 20 s full


def test_postgresql_restarted_during_a_burst_loses_no_sos(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    plan = presses([f"pg-{n:05d}" for n in range(SOS)])
    with restartable_postgres() as postgres:
        database_url = postgres.server.url_for(postgres.server.create_database("anxin_faults"))
        migrated(database_url)
        with running_members(tmp_path, mosquitto.url, database_url) as members:
            fleet = SosFleet(mosquitto.host, mosquitto.port)
            thread, box = in_thread(fleet, plan, RATE, within_s=scaled(90, 240))
            while len(fleet.report.sent_ns) < SOS // 3:
                time.sleep(0.01)
            started = time.monotonic()
            away_s = postgres.restart()
            thread.join(timeout=scaled(100, 250))
            assert box, "the fleet did not finish"
            count = drain(plan, database_url, within_s=60)
            seconds = time.monotonic() - started
            retried = sum(len(m.events("ingest.store_unavailable")) for m in members)
            record(
                FaultResult(
                    fault="4 PostgreSQL restarted during a burst",
                    sent=SOS,
                    lost=count.lost,
                    duplicated=count.duplicated,
                    unexpected=count.unexpected,
                    recovered=retried,
                    seconds=seconds,
                    note=(
                        f"database away {away_s:.1f} s; recovered = batches stored on a retry; "
                        f"takeovers drained {members.drained()}"
                    ),
                )
            )
            assert (count.lost, count.duplicated, count.unexpected) == (0, 0, 0), count
            assert retried > 0  # the restart did cut the members off their database
