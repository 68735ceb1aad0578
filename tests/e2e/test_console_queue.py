"""The queue's order and colours, and an alert's detail as the API's detail carries it (elder,
device, contacts, telemetry), in a real Chromium against ``anxin api`` on a real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Request, Route, expect

from alerting.decisions import RaiseAlert
from alerting.escalation import Escalator
from alerting.model import AlertType, Category, Priority
from alerting.rules import RuleSet
from alerting.store import raise_or_coalesce
from anxin.database import open_database, upgrade
from tests.support.console import console_page, log_in
from tests.support.service import AnxinEnv, anxin_env, running_anxin

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"

# (device, type, category, priority, minutes ago), stored in this order.
ALERTS = [
    ("batt-1", AlertType.LOW_BATTERY, Category.TECHNICAL, Priority.LOW, 50),
    ("pendant-2", AlertType.SOS, Category.EMERGENCY, Priority.CRITICAL, 2),
    ("leak-1", AlertType.WATER_LEAK, Category.EMERGENCY, Priority.HIGH, 30),
    ("pendant-1", AlertType.SOS, Category.EMERGENCY, Priority.CRITICAL, 9),
    ("phone-1", AlertType.CHECKIN_MISSED, Category.WELFARE, Priority.MEDIUM, 40),
    ("button-1", AlertType.SERVICE_REQUEST, Category.SERVICE, Priority.LOW, 20),
]


def store_alerts(setup: AnxinEnv) -> dict[str, int]:
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    ids = {}
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for device, type_, category, priority, minutes in ALERTS:
            at = now - timedelta(minutes=minutes)
            decision = RaiseAlert(
                device_id=device,
                elder_id=None,
                type=type_,
                category=category,
                priority=priority,
                occurred_at=at,
                location={"lat": 40.123456, "lon": 114.987654, "accuracy_m": 12},
            )
            ids[device] = raise_or_coalesce(session, decision, at).alert_id
    engine.dispose()
    return ids


def test_most_urgent_then_oldest_first_coloured_by_category(
    tmp_path: Path, browser: Browser
) -> None:
    setup = anxin_env(tmp_path / "anxin")
    setup.add_user("wang", PASSWORD)
    store_alerts(setup)
    with running_anxin(setup, command="api"), console_page(browser) as page:
        log_in(page, setup, "wang", PASSWORD)
        rows = page.locator(".alert-row")
        expect(rows).to_have_count(len(ALERTS))
        order = [rows.nth(i).get_attribute("data-device-id") for i in range(len(ALERTS))]
        classes = [rows.nth(i).get_attribute("class") for i in range(len(ALERTS))]
        expect(page).to_have_title("(6) 安心 12349 调度台")

        page.get_by_label("类别").select_option("welfare")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("未按时报平安")

    assert order == ["pendant-1", "pendant-2", "leak-1", "phone-1", "batt-1", "button-1"]
    assert [c.split()[1:3] if c else None for c in classes] == [
        ["cat-emergency", "prio-critical"],
        ["cat-emergency", "prio-critical"],
        ["cat-emergency", "prio-high"],
        ["cat-welfare", "prio-medium"],
        ["cat-technical", "prio-low"],
        ["cat-service", "prio-low"],
    ]


TELEMETRY = [
    {"time": f"2026-11-22T0{h}:00:00Z", "metric": "heart_rate", "value": v}
    for h, v in [(1, 72), (2, 75), (3, 110), (4, 96)]
] + [{"time": "2026-11-22T04:00:00Z", "metric": "temperature_c", "value": 21.5}]

# The shape of the API's alert detail (api/alert_views.py), with telemetry as a telemetry
# store would fill it.
PROFILE = {
    "elder": {
        "id": 7,
        "name": "刘秀英",
        "phone": "13800138009",
        "address": "花园街道8号",
        "community": "张家口市/张北县/花园街道/康乐社区",
        "location": None,
        "categories": ["disabled", "empty_nest"],
        "medical_notes": "高血压，独自在家",
        "key_safe_note": None,
    },
    "device": {
        "id": "pendant-1",
        "model": "sos-pendant",
        "room": "客厅",
        "status": "active",
        "battery": 64,
        "online": True,
        "last_seen_at": "2026-11-22T04:00:00Z",
    },
    "contacts": [
        {"position": 2, "name": "社区小陈", "phone": "13700137009", "relation": "community_worker"},
        {"position": 1, "name": "刘强", "phone": "13900139009", "relation": "family"},
    ],
    "telemetry": TELEMETRY,
}


def test_the_detail_draws_the_profile_and_telemetry_the_api_sends(
    tmp_path: Path, browser: Browser
) -> None:
    """The real detail answer with an elder, device, contacts (out of order: the page orders
    them by position) and telemetry put in on its way to the page."""
    setup = anxin_env(tmp_path / "anxin")
    setup.add_user("wang", PASSWORD)
    alert_id = store_alerts(setup)["pendant-1"]
    registry_reads: list[str] = []

    def with_profile(route: Route) -> None:
        response = route.fetch()
        body: dict[str, Any] = {**response.json(), **PROFILE}
        route.fulfill(response=response, json=body)

    def watch(request: Request) -> None:
        if "/api/v1/elders/" in request.url or "/api/v1/devices/" in request.url:
            registry_reads.append(request.url)

    with running_anxin(setup, command="api"), console_page(browser) as page:
        page.route(f"**/api/v1/alerts/{alert_id}", with_profile)
        page.on("request", watch)
        log_in(page, setup, "wang", PASSWORD)
        page.locator(f'.alert-row[data-alert-id="{alert_id}"] [data-role="select"]').click()
        detail = page.locator("#detail")
        expect(detail.locator(".elder-name")).to_have_text("刘秀英")
        expect(detail.locator(".elder .chip")).to_have_text(["失能", "空巢"])
        expect(detail.locator(".elder")).to_contain_text("高血压，独自在家")
        expect(detail.locator(".contact-list li")).to_have_text(
            ["刘强家属13900139009", "社区小陈社区工作者13700137009"]
        )
        expect(detail.locator(".device")).to_contain_text("64%")
        expect(detail.locator(".device")).to_contain_text("客厅")
        expect(detail.locator(".location")).to_contain_text("40.12346, 114.98765 (精度 12 米)")

        heart = detail.locator('figure.chart[data-metric="heart_rate"]')
        expect(heart.locator("figcaption")).to_have_text("心率96")
        expect(heart.get_by_role("img")).to_have_attribute("aria-label", "心率: 96 (72–110)")
        points = heart.locator("polyline").get_attribute("points") or ""
        temperature = detail.locator('figure.chart[data-metric="temperature_c"]')
        expect(temperature.locator("circle")).to_have_count(2)  # one reading: a dot

    xs_ys = [tuple(map(float, p.split(","))) for p in points.split()]
    assert len(xs_ys) == 4
    xs = [x for x, _ in xs_ys]
    ys = [y for _, y in xs_ys]
    assert xs == sorted(xs)
    assert ys.index(min(ys)) == 2, "110 is the highest reading, drawn highest"
    assert registry_reads == [], "the detail carried the profile: no registry reads needed"


def test_an_engineer_sees_the_queue_but_no_people_and_no_actions(
    tmp_path: Path, browser: Browser
) -> None:
    setup = anxin_env(tmp_path / "anxin")
    setup.add_user("zhao", PASSWORD, role="engineer")
    alert_id = store_alerts(setup)["pendant-1"]
    with running_anxin(setup, command="api"), console_page(browser) as page:
        log_in(page, setup, "zhao", PASSWORD)
        row = page.locator(f'.alert-row[data-alert-id="{alert_id}"]')
        expect(row.locator('[data-role="claim"]')).to_have_count(0)
        row.locator('[data-role="select"]').click()
        detail = page.locator("#detail")
        expect(detail.locator(".read-only")).to_have_text("您的角色只能查看告警")
        expect(detail.locator(".action-bar button:enabled")).to_have_count(0)
        expect(detail.locator(".location")).to_contain_text("未上报位置")


def test_an_alert_the_system_escalated_is_claimed_in_one_click(
    tmp_path: Path, browser: Browser
) -> None:
    """Nobody took the SOS in time: the scheduler's escalation (run here once, as the scheduler
    of `anxin serve` would) leaves it escalated and unheld; it still waits to be taken."""
    setup = anxin_env(tmp_path / "anxin")
    setup.add_user("wang", PASSWORD)
    alert_id = store_alerts(setup)["pendant-1"]
    rules = RuleSet()
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    with sessions.begin() as session:
        escalator = Escalator(escalation=rules.escalation, notify=rules.notify)
        escalated = {change.alert_id for change in escalator.step(session, datetime.now(UTC))}
    engine.dispose()
    assert alert_id in escalated

    with running_anxin(setup, command="api"), console_page(browser) as page:
        log_in(page, setup, "wang", PASSWORD)
        row = page.locator(f'.alert-row[data-alert-id="{alert_id}"]')
        expect(row).to_contain_text("已升级")
        expect(row).to_have_class(re.compile(r"\bunclaimed\b"))
        expect(page).to_have_title("(6) 安心 12349 调度台")
        row.get_by_role("button", name=re.compile("^认领")).click()
        detail = page.locator("#detail")
        expect(detail.locator(".detail-title")).to_contain_text("已认领")
        # (This api process has no broker: the `claimed` Ack's device_not_told comes after.)
        expect(detail.locator('.timeline-list li[data-action="claimed"]')).to_contain_text(
            "认领wang"
        )
        expect(detail.locator('.timeline-list li[data-action="escalated"]')).to_contain_text(
            "升级system"
        )
        entries = detail.locator(".timeline-list li")
        actions = [entries.nth(i).get_attribute("data-action") for i in range(entries.count())]
        expect(row).not_to_have_class(re.compile(r"\bunclaimed\b"))
        expect(page).to_have_title("(5) 安心 12349 调度台")

    assert actions[0] == "created"
    assert actions[-2:] == ["claimed", "device_not_told"]
    assert "escalated" in actions
