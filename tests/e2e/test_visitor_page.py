"""The community worker's page (/visits) at a phone's size in a real Chromium, against
``anxin api`` on a real database: today's visits in order (the overdue one first), the address,
the key-safe note, the people to call as tel: links, a one-tap outcome, Chinese first and
English on a tap; nothing of another community."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from alerting import visit_store
from alerting.visit_store import VisitRow
from alerting.visits import VisitReason
from anxin.database import open_database, upgrade
from devices.elders import ElderRow
from tests.support.console import COUNT_TONES, import_fleet
from tests.support.service import anxin_env, running_anxin

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
COMMUNITY = "张家口市/张北县/花园街道/幸福社区"


def test_todays_visits_on_a_phone(tmp_path: Path, browser: Browser, artifacts: Path) -> None:
    setup = anxin_env(tmp_path / "anxin")
    import_fleet(setup, tmp_path)  # 张桂兰 of 幸福社区, with her key-safe note and contacts
    result = setup.cli("users", "add", "xiaoli", "--role", "visitor", "--scope", COMMUNITY,
                       "--password-stdin", stdin=PASSWORD)  # fmt: skip
    assert result.returncode == 0, result.stderr
    engine, sessions = open_database(setup.env["ANXIN_DATABASE_URL"])
    upgrade(engine)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        zhang = session.scalars(select(ElderRow).where(ElderRow.name == "张桂兰")).one()
        elsewhere = ElderRow(name="赵强", community="张家口市/崇礼区/西湾子镇", address="西湾子1号")
        session.add(elsewhere)
        session.flush()

        def visit(elder: int, due: datetime, reason: VisitReason, notes: str | None = None) -> int:
            return visit_store.request_visit(
                session, elder_id=elder, reason=reason, due_at=due, actor="dispatcher",
                now=now - timedelta(hours=3), notes=notes,
            ).id  # fmt: skip

        later = visit(zhang.id, now + timedelta(minutes=30), VisitReason.ROUTINE)
        overdue = visit(zhang.id, now - timedelta(hours=1), VisitReason.ALERT_FOLLOWUP,
                        "电话无人接听，请上门查看")  # fmt: skip
        visit(elsewhere.id, now + timedelta(minutes=10), VisitReason.MANUAL)  # not ours
    with running_anxin(setup, command="api"):
        context = browser.new_context(
            viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai", is_mobile=True
        )
        context.add_init_script(COUNT_TONES)
        page = context.new_page()
        # "Today" is the browser's day: hold its clock at the later visit's due time, so that
        # a run near Shanghai's midnight (16:00 UTC) still lists both visits as today's.
        page.clock.set_fixed_time(now + timedelta(minutes=30))
        try:
            page.goto(f"{setup.api_url}/visits")
            page.get_by_label("用户名").fill("xiaoli")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            cards = page.locator(".visit")
            expect(cards).to_have_count(2)
            assert [cards.nth(i).get_attribute("data-id") for i in range(2)] == [
                str(overdue),
                str(later),
            ]
            first = cards.nth(0)
            expect(first).to_have_attribute("data-overdue", "true")
            expect(first.locator(".badge.overdue")).to_have_text("已逾期")
            expect(first.locator(".badge").first).to_have_text("告警回访")
            expect(first.locator(".address")).to_have_text("幸福社区3号楼2单元401")
            expect(first.locator(".key-safe")).to_have_text("钥匙：备用钥匙在邻居王芳家")
            expect(first.locator(".notes")).to_have_text("电话无人接听，请上门查看")
            calls = first.locator(".calls a")
            hrefs = [calls.nth(i).get_attribute("href") for i in range(calls.count())]
            assert hrefs == ["tel:13800138001", "tel:13900139001", "tel:13700137002"]
            expect(page.locator("#visits-summary")).to_have_text("今日巡访 2 户，待完成 2 户")
            # One tap: the elder is well.
            first.get_by_role("button", name="老人安好").click()
            expect(first.locator(".done-line")).to_have_text("已完成：老人安好")
            expect(page.locator("#visits-summary")).to_have_text("今日巡访 2 户，待完成 1 户")
            page.screenshot(path=str(artifacts / "visitor-page.png"), full_page=True)
            page.get_by_role("button", name="English").click()
            expect(page.locator("h1")).to_have_text("Today's visits")
            expect(cards.nth(1).get_by_role("button", name="Elder is well")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        finally:
            context.close()
    with sessions() as session:
        done = session.get(VisitRow, overdue)
        assert done is not None
        assert (done.status, done.outcome, done.assignee) == ("done", "well", "xiaoli")
    engine.dispose()
