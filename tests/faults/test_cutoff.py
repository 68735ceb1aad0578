"""Fault 6: every ingest member cut off from the broker (our TCP proxy drops the link and
refuses new connections) for 60 s while the devices go on. Once the link is back the members
are connected within 10 s, the SOS pressed meanwhile are all stored, and no device is called
offline for the silence the cut made.

The devices beat every 5 s and count as offline after 55 s of silence: longer than it takes the
platform to see its own outage (the pulse, alerting/platform.py: 45 s at most), shorter than
the cut, so the cut would call them offline if the outage were not taken into account. The
bounded form cuts for 10 s: it checks the reconnection and the SOS, not the offline alerts.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from devices.sql import normalise_url
from tests.faults.fleet import Heartbeats, SosFleet, presses
from tests.faults.harness import Member, drain, in_thread, running_members
from tests.faults.proxy import cuttable_link
from tests.faults.results import FaultResult, record, scaled
from tests.support.mosquitto import Mosquitto
from tests.support.service import AnxinEnv, anxin_env

pytestmark = [pytest.mark.faults, pytest.mark.integration]

CUT_S = scaled(10.0, 60.0)
DEVICES = scaled(100, 1000)
SOS = scaled(200, 2000)
BACK_WITHIN_S = 10.0
MODELS = '{"sos-pendant": {"heartbeat_s": 11, "offline_after_missed": 5}}'


def _offline_alerts(database_url: str) -> int:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM alerts WHERE type = 'device_offline'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _all_connected(members: list[Member]) -> bool:
    try:
        return all(httpx.get(m.health_url, timeout=1).status_code == 200 for m in members)
    except httpx.TransportError:
        return False


def test_ingest_cut_off_from_the_broker_comes_back_and_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, database_url: str
) -> None:
    devices = [f"hb-{n:04d}" for n in range(DEVICES)]
    registry = tmp_path / "fleet.csv"
    registry.write_text("device_id,model\n" + "".join(f"{d},sos-pendant\n" for d in devices))
    settings = {"ANXIN_DEVICE_MODELS": MODELS}
    admin = AnxinEnv(
        folder=tmp_path, env=anxin_env(tmp_path, ANXIN_DATABASE_URL=database_url, **settings).env
    )
    imported = admin.cli("devices", "import", str(registry))
    assert imported.returncode == 0, imported.stderr
    plan = presses([f"cut-sos-{n:05d}" for n in range(SOS)])
    heartbeats = Heartbeats(mosquitto.host, mosquitto.port, devices, every_s=5.0)
    scheduler = Member(
        name="scheduler",
        folder=tmp_path / "scheduler",
        env=anxin_env(tmp_path / "scheduler", ANXIN_DATABASE_URL=database_url, **settings).env,
        command="scheduler",
    )
    with (
        cuttable_link(mosquitto.host, mosquitto.port) as link,
        running_members(tmp_path, link.url, database_url, **settings) as members,
    ):
        scheduler.start()
        try:
            scheduler.wait_ready()
            heartbeats.start()
            time.sleep(6)  # every device heard, the members' pulse beating
            link.cut()
            cut_at = time.monotonic()
            fleet = SosFleet(mosquitto.host, mosquitto.port)
            thread, box = in_thread(fleet, plan, SOS / (CUT_S / 2), within_s=CUT_S + 60)
            time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
            link.restore()
            restored_at = time.monotonic()
            while not _all_connected(members.members):
                assert time.monotonic() - restored_at < 30, "the members did not come back"
                time.sleep(0.05)
            back_s = time.monotonic() - restored_at
            thread.join(timeout=60)
            count = drain(plan, database_url, within_s=30)
            time.sleep(3)  # a moment of the scheduler after the drain
            offline = _offline_alerts(database_url)
        finally:
            heartbeats.stop()
            scheduler.stop()
    record(
        FaultResult(
            fault=f"6 ingest cut off from the broker for {CUT_S:g} s",
            sent=SOS,
            lost=count.lost,
            duplicated=count.duplicated,
            unexpected=count.unexpected + offline,
            recovered=SOS - count.lost,
            seconds=CUT_S + back_s,
            note=(
                f"members back {back_s:.1f} s after the link; {offline} offline alerts of "
                f"{DEVICES} devices silent {CUT_S:g} s (offline after 55 s)"
            ),
        )
    )
    assert box, "the fleet did not finish"
    assert (count.lost, count.duplicated, count.unexpected) == (0, 0, 0), count
    assert back_s <= BACK_WITHIN_S
    assert offline == 0
