"""``GET /api/v1/stats/kpis`` on known data in virtual time, on SQLite and PostgreSQL: the
figures are worked out by hand below."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from alerting import lifecycle
from alerting.kpis import percentile
from alerting.model import AlertStatus, AlertType, Outcome
from alerting.store import close_open
from devices.registry import DeviceRow
from tests.support.api_world import ApiWorld, api_world, raise_alert

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> Iterator[ApiWorld]:
    with api_world(sessions, clock=lambda: T0 + HOUR) as running:
        assert running.registry is not None
        with sessions.begin() as session:
            known_history(session, running.registry.zhang, running.registry.zhao)
        yield running


def known_history(session: Session, zhang: int, zhao: int) -> None:
    """Alerts in [T0, T0 + 1 h), one just before and one at its end (excluded), and devices."""

    def alert(device: str, elder: int, created_s: float, kind: AlertType = AlertType.SOS) -> int:
        return raise_alert(session, device, elder, at(created_s), kind)

    def claim(alert_id: int, seconds: float) -> None:
        lifecycle.claim(session, alert_id, actor="wang", now=at(seconds))

    def resolve(alert_id: int, seconds: float, outcome: Outcome) -> None:
        lifecycle.resolve(
            session, alert_id, actor="wang", now=at(seconds), outcome=outcome, note=None,
            may_override=False,
        )  # fmt: skip

    # 1: claimed after 10 s, released, claimed again at 300 s: the first claim counts.
    a1 = alert("p-zhang", zhang, 0)
    claim(a1, 10)
    lifecycle.release(session, a1, actor="wang", now=at(20), may_override=False)
    claim(a1, 300)
    resolve(a1, 320, Outcome.FALSE_ALARM)
    # 2: after 45 s.
    a2 = alert("p-zhang", zhang, 60)
    claim(a2, 105)
    resolve(a2, 200, Outcome.RESOLVED_BY_PHONE)
    # 3: a fall, after 120 s, still being worked.
    a3 = alert("p-zhang", zhang, 120, AlertType.FALL)
    claim(a3, 240)
    lifecycle.acknowledge(session, a3, actor="wang", now=at(250), may_override=False)
    # 4: 崇礼区, after 200 s.
    a4 = alert("p-zhao", zhao, 180)
    claim(a4, 380)
    resolve(a4, 900, Outcome.AMBULANCE_120)
    # 5: 崇礼区, never claimed, closed by the system.
    alert("p-zhao", zhao, 240, AlertType.DEVICE_OFFLINE)
    close_open(
        session, device_id="p-zhao", alert=AlertType.DEVICE_OFFLINE,
        status=AlertStatus.RESOLVED, now=at(500), actor="system", reason="device back online",
    )  # fmt: skip
    # 6: never claimed, still open (on another device: one open SOS per device).
    session.add(DeviceRow(id="p-zhang-2", model="sos-pendant", elder_id=zhang, online=True))
    session.add(
        DeviceRow(
            id="p-zhang-3", model="sos-pendant", elder_id=zhang, online=True, status="maintenance"
        )
    )
    session.flush()
    alert("p-zhang-2", zhang, 300)
    # Outside the window: 10 s before it, and at its end (the end is exclusive).
    a7 = alert("p-zhang-3", zhang, -10)
    claim(a7, -5)
    resolve(a7, 0, Outcome.OTHER)
    alert("p-zhang-3", zhang, 3600)
    # Devices now: p-zhang and p-zhang-2 online, p-zhao offline; p-zhang-3 is in maintenance.
    for device_id, online in (("p-zhang", True), ("p-zhao", False)):
        row = session.get(DeviceRow, device_id)
        assert row is not None
        row.online = online


def kpis(world: ApiWorld, user: str, **params: str) -> dict[str, object]:
    response = world.client.get("/api/v1/stats/kpis", params=params, headers=world.headers(user))
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


WINDOW = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-22T01:00:00Z"}


def test_the_figures_of_a_known_hour(world: ApiWorld) -> None:
    # Waits to the first claim: 10, 45, 120, 200 s; two of six alerts never claimed.
    assert kpis(world, "supervisor", **WINDOW) == {
        "from": "2026-11-22T00:00:00Z",
        "to": "2026-11-22T01:00:00Z",
        "scope": "",
        "alerts": 6,
        "claimed": 4,
        "time_to_claim_p50_s": 82.5,  # halfway between 45 and 120
        "time_to_claim_p90_s": 176.0,  # 120 + 0.7 × (200 − 120)
        "claimed_within_60s": 2 / 6,
        "claimed_within_180s": 3 / 6,
        "by_type": {"device_offline": 1, "fall": 1, "sos": 4},
        "by_outcome": {
            "ambulance_120": 1,
            "auto_resolved": 1,
            "false_alarm": 1,
            "open": 2,
            "resolved_by_phone": 1,
        },
        "devices_active": 3,
        "devices_online": 2,
        "devices_online_share": 2 / 3,
    }


def test_a_district_admin_sees_their_district(world: ApiWorld) -> None:
    # 张北县: alerts 1, 2, 3 and 6; waits 10, 45, 120 s.
    body = kpis(world, "zhangbei_admin", **WINDOW)
    assert {k: body[k] for k in list(body)[2:]} == {
        "scope": "张家口市/张北县",
        "alerts": 4,
        "claimed": 3,
        "time_to_claim_p50_s": 45.0,
        "time_to_claim_p90_s": 105.0,  # 45 + 0.8 × (120 − 45)
        "claimed_within_60s": 0.5,
        "claimed_within_180s": 0.75,
        "by_type": {"fall": 1, "sos": 3},
        "by_outcome": {"false_alarm": 1, "open": 2, "resolved_by_phone": 1},
        "devices_active": 2,
        "devices_online": 2,
        "devices_online_share": 1.0,
    }


def test_the_default_window_is_the_last_day(world: ApiWorld) -> None:
    body = kpis(world, "admin")  # the clock says T0 + 1 h
    assert (body["from"], body["to"]) == ("2026-11-21T01:00:00Z", "2026-11-22T01:00:00Z")
    assert (body["alerts"], body["claimed"]) == (7, 5)  # alert 7 too, claimed after 5 s
    offset = kpis(world, "admin", **{"from": "2026-11-22T08:00:00+08:00", "to": WINDOW["to"]})
    assert (offset["from"], offset["alerts"]) == ("2026-11-22T00:00:00Z", 6)


def test_an_empty_window_has_no_shares(world: ApiWorld) -> None:
    body = kpis(world, "admin", **{"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"})
    assert (body["alerts"], body["time_to_claim_p50_s"], body["claimed_within_60s"]) == (
        0,
        None,
        None,
    )
    assert (body["by_type"], body["by_outcome"]) == ({}, {})


def test_roles_and_bad_windows(world: ApiWorld) -> None:
    for user in ("dispatcher", "engineer"):
        refused = world.client.get("/api/v1/stats/kpis", headers=world.headers(user))
        assert (refused.status_code, refused.json()) == (
            403,
            {"detail": f"the {user} role may not do this"},
        )
    for params, detail in (
        ({"from": WINDOW["to"], "to": WINDOW["from"]}, "from must be before to"),
        ({"from": "2024-01-01T00:00:00Z", "to": WINDOW["to"]}, "the window is at most 366 days"),
    ):
        bad = world.client.get("/api/v1/stats/kpis", params=params, headers=world.headers("admin"))
        assert (bad.status_code, bad.json()) == (422, {"detail": detail})
    garbled = world.client.get(
        "/api/v1/stats/kpis", params={"from": "yesterday"}, headers=world.headers("admin")
    )
    assert garbled.status_code == 422


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.9) == pytest.approx(3.7)
