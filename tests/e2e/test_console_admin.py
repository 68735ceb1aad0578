"""An admin administers in the console, in a real headless Chromium at 1366×768, against
`anxin serve`: creates and disables a user, opens an elder's page (profile, contacts, devices
and their state, alerts over time), adds a contact and binds a device, uploads a CSV and reads
its per-row report, and reads the audit of all of it; the elder's page lists the elder's
visits. Screenshots of each page go to the artifacts folder (docs/images/admin-*.png are copies
of them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.console import console_page, import_fleet, log_in
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.service import anxin_env, running_anxin

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
UPLOAD = (
    "device_id,model,elder_name,community,contact_name,contact_phone\n"
    "smoke-7,smoke-detector,赵秀珍,张家口市/张北县/花园街道/幸福社区,赵刚,13900139007\n"
    "pendant-8,sos-pendent,钱英,张家口市/张北县,,\n"
)


def shoot(page: Page, path: Path) -> None:
    """The whole admin page: it scrolls inside its pane, so the viewport grows to hold it."""
    height = page.evaluate("document.getElementById('admin-view').scrollHeight") + 60
    page.set_viewport_size({"width": 1366, "height": max(768, height)})
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1366, "height": 768})


def test_an_admin_administers_users_elders_devices_the_import_and_reads_the_audit(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("boss", PASSWORD, role="admin")
    import_fleet(setup, tmp_path)
    upload = tmp_path / "upload.csv"
    upload.write_text(UPLOAD, encoding="utf-8")
    with running_anxin(setup), console_page(browser) as page:
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-1/sos", json.dumps({"trigger": "button"}))
        log_in(page, setup, "boss", PASSWORD)
        expect(page.locator('.alert-row[data-device-id="pendant-1"]')).to_be_visible(timeout=10_000)

        page.get_by_role("button", name="管理").click()
        expect(page.locator("#users-table")).to_contain_text("boss")
        form = page.locator("#new-user")
        form.get_by_label("用户名").fill("li")
        form.get_by_label("密码").fill("li-password-1")
        form.get_by_label("管辖范围").fill("张家口市/张北县")
        form.get_by_role("button", name="创建").click()
        li = page.locator('#users-table tr[data-username="li"]')
        expect(li).to_contain_text("张家口市/张北县")
        li.get_by_role("button", name="停用").click()
        expect(page.locator('#users-table tr[data-username="li"]')).to_contain_text("已停用")
        login = httpx.post(
            f"{setup.api_url}/api/v1/auth/token",
            data={"username": "li", "password": "li-password-1"},
        )
        assert login.status_code == 401
        shoot(page, artifacts / "admin-users.png")

        # A visit asked for by hand: the elder's page lists it among the elder's visits.
        headers = {"Authorization": f"Bearer {setup.token('boss', PASSWORD)}"}
        elders = httpx.get(f"{setup.api_url}/api/v1/elders", headers=headers).json()["items"]
        zhang = next(e for e in elders if e["name"] == "张桂兰")
        due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        asked = httpx.post(
            f"{setup.api_url}/api/v1/visits",
            json={"elder_id": zhang["id"], "due_at": due, "notes": "上门看看"},
            headers=headers,
        )
        assert asked.status_code == 201, asked.text
        page.get_by_role("link", name="老人档案").click()
        page.locator("#elders-table").get_by_role("link", name="张桂兰").click()
        expect(page.locator(".elder-name")).to_have_text("张桂兰")
        expect(page.locator("#elder-profile")).to_contain_text("备用钥匙在邻居王芳家")
        expect(page.locator("#elder-devices tbody tr")).to_have_count(2)
        expect(page.locator("#elder-alerts .month-bars li")).to_have_count(1)
        expect(page.locator("#elder-alerts tbody tr")).to_contain_text("SOS 紧急呼叫")
        visit_id = asked.json()["id"]
        visit = page.locator(f'#elder-visits tr[data-visit-id="{visit_id}"]')
        expect(visit).to_contain_text("人工安排")
        expect(visit).to_contain_text("待安排")
        contact = page.locator("#new-contact")
        contact.get_by_label("姓名").fill("孙丽")
        contact.get_by_label("电话").fill("13600136003")
        contact.get_by_label("关系").select_option("neighbour")
        contact.get_by_role("button", name="添加联系人").click()
        expect(page.locator("#contacts-table tbody tr")).to_have_count(3)
        bind = page.locator("#bind-device")
        bind.get_by_label("设备编号").fill("pendant-2")
        bind.get_by_label("房间").fill("客厅")
        bind.get_by_role("button", name="绑定设备").click()
        expect(page.locator("#elder-devices tbody tr")).to_have_count(3)
        expect(page.locator('#elder-devices tr[data-device-id="pendant-2"]')).to_contain_text(
            "正常"
        )
        shoot(page, artifacts / "admin-elder.png")

        page.get_by_role("link", name="批量导入").click()
        page.locator("#import-form input[type=file]").set_input_files(str(upload))
        page.get_by_role("button", name="上传导入").click()
        report = page.locator("#import-report")
        expect(report.locator(".import-summary")).to_contain_text("新建设备 1")
        expect(report.locator("#import-errors tbody tr")).to_have_count(1)
        expect(report.locator("#import-errors")).to_contain_text("sos-pendent")
        shoot(page, artifacts / "admin-import.png")

        page.get_by_role("link", name="操作记录").click()
        actions = page.locator("#audit-table tbody tr td:nth-child(3)")
        expect(actions).to_have_text(
            ["devices.imported", "device.created", "elder.updated", "user.updated", "user.created"]
        )
        expect(page.locator("#audit-table")).not_to_contain_text("li-password-1")
        expect(page.locator("#audit-table")).not_to_contain_text("孙丽")
        shoot(page, artifacts / "admin-audit.png")

        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("link", name="Audit")).to_be_visible()
        page.get_by_role("link", name="Back to the queue").click()
        expect(page.locator('.alert-row[data-device-id="pendant-1"]')).to_be_visible()
