"""Fault 3: the broker stopped (SIGTERM) and later killed (SIGKILL) during a burst of SOS, each
time started again; the devices resend an unanswered SOS with the same seq. No SOS is lost.

Mosquitto 2.0 (Debian's 2.0.11) saves its whole state at a clean stop and, as
deploy/mosquitto.conf sets it, after every 1000 changes; a kill loses what came since the last
save. The device's resend is what covers it: an SOS is answered only once stored.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.faults.broker import running_broker
from tests.faults.fleet import SosFleet, presses
from tests.faults.harness import drain, in_thread, running_members
from tests.faults.results import FaultResult, record, scaled

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SOS = scaled(1000, 10_000)
RATE = scaled(200.0, 500.0)  # 5 s bounded, 20 s full
RESEND_S = scaled(2.0, 10.0)
DOWN_S = 1.0


def test_the_broker_stopped_and_killed_during_a_burst_loses_no_sos(
    tmp_path: Path, database_url: str
) -> None:
    plan = presses([f"brk-{n:05d}" for n in range(SOS)])
    with (
        running_broker(tmp_path / "mosquitto") as broker,
        running_members(tmp_path, broker.url, database_url),
    ):
        fleet = SosFleet(broker.host, broker.port, resend_s=RESEND_S)
        thread, box = in_thread(fleet, plan, RATE, within_s=scaled(90, 240))
        started = time.monotonic()
        for share, how in ((1 / 3, signal.SIGTERM), (2 / 3, signal.SIGKILL)):
            while len(fleet.report.sent_ns) < SOS * share:
                time.sleep(0.01)
            broker.end(how)
            time.sleep(DOWN_S)
            broker.start()
        thread.join(timeout=scaled(100, 250))
        assert box, "the fleet did not finish"
        report = box[0]
        count = drain(plan, database_url, within_s=30)
        seconds = time.monotonic() - started
        recovered = sum(1 for sends in report.sends.values() if sends > 1)
        unanswered = sum(1 for p in plan if p not in report.answered_ns)
        record(
            FaultResult(
                fault="3 broker SIGTERM then SIGKILL during a burst, devices resending",
                sent=SOS,
                lost=count.lost,
                duplicated=count.duplicated,
                unexpected=count.unexpected,
                recovered=recovered,
                seconds=seconds,
                note=(
                    f"resend every {RESEND_S:g} s; {report.resent} resends, "
                    f"{report.reconnects} fleet reconnects; unanswered {unanswered}"
                ),
            )
        )
        assert (count.lost, count.duplicated, count.unexpected) == (0, 0, 0), count
        assert unanswered == 0  # every device heard its Ack, and stopped resending
        assert recovered > 0  # the broker's deaths did cost messages: the resends saved them
