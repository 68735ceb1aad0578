"""A dispatcher works an SOS in the console, in a real headless Chromium at 1366×768:
mosquitto_pub → real Mosquitto → ``anxin serve`` → the alert stream → the alert appears on the
open page without a reload → claim → resolve with an outcome → the device hears ``resolved``
over MQTT. And the same without the stream, by polling."""

from __future__ import annotations

import json
import queue
import re
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from playwright.sync_api import Browser, Page, expect

from alerting.model import Outcome
from tests.support.console import console_page, import_fleet, log_in
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import listening, mosquitto_pub
from tests.support.service import AnxinEnv, anxin_env, running_anxin

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
# The row's own button (its name starts with the type); the claim button's starts with 认领.
OPEN_SOS = re.compile("^SOS 紧急呼叫")
SOS = json.dumps({"trigger": "button", "location": {"room": "卧室"}})


def next_ack(acks: queue.Queue[paho.MQTTMessage], status: str) -> dict[str, object]:
    """The next Ack with ``status``, skipping the others (e.g. ``received``)."""
    while True:
        ack: dict[str, object] = json.loads(acks.get(timeout=10).payload)
        if ack["status"] == status:
            return ack


def fits_the_screen(page: Page) -> bool:
    width: bool = page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"
        " && document.documentElement.scrollHeight <= window.innerHeight"
    )
    return width


def serving(mosquitto: Mosquitto, folder: Path) -> AnxinEnv:
    setup = anxin_env(folder / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("wang", PASSWORD)
    import_fleet(setup, folder)
    return setup


def test_a_dispatcher_sees_an_sos_arrive_claims_and_resolves_it(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    setup = serving(mosquitto, tmp_path)
    with (
        running_anxin(setup),
        listening(mosquitto.port, "anxin/v1/pendant-1/ack") as acks,
        console_page(browser) as page,
    ):
        log_in(page, setup, "wang", PASSWORD)
        expect(page.get_by_text("暂无待处理告警")).to_be_visible()
        expect(page.locator("#connection")).to_have_attribute("data-mode", "live")
        expect(page.locator("#connection")).to_have_text("实时")
        page.evaluate("window.__sameDocument = true")

        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-1/sos", SOS)
        row = page.locator('.alert-row[data-device-id="pendant-1"]')
        expect(row).to_be_visible(timeout=10_000)
        assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        expect(row).to_contain_text("SOS 紧急呼叫")
        expect(row).to_contain_text("危急")
        expect(row).to_contain_text("张桂兰 · 幸福社区")
        expect(row).to_have_class("alert-row cat-emergency prio-critical status-new unclaimed")
        expect(page.locator("#announcer")).to_contain_text("新的紧急告警：SOS 紧急呼叫")
        assert page.evaluate("window.__tones") > 0, "no tone was played"
        expect(page).to_have_title("(1) 安心 12349 调度台")
        assert next_ack(acks, "received")

        row.get_by_role("button", name=OPEN_SOS).click()
        detail = page.locator("#detail")
        expect(detail.locator(".elder-name")).to_have_text("张桂兰")
        expect(detail.locator(".elder")).to_contain_text("幸福社区3号楼2单元401")
        expect(detail.locator(".elder")).to_contain_text("备用钥匙在邻居王芳家")
        expect(detail.locator(".elder .chip")).to_have_text(["高龄", "独居"])
        expect(detail.locator(".contact-list li")).to_have_text(
            # The relation as the registry wrote it (子女), not only its kind (家属).
            ["李明子女13900139001", "王芳邻居13700137002"]
        )
        expect(detail.locator(".location")).to_contain_text("卧室")
        expect(detail.locator(".device")).to_contain_text("sos-pendant")
        expect(detail.locator(".timeline-list li")).to_have_count(1)

        detail.get_by_role("button", name="认领").click()
        expect(detail.locator(".detail-title")).to_contain_text("已认领")
        expect(row).to_contain_text("wang 处理中")
        expect(detail.get_by_role("button", name="处理完成")).to_be_in_viewport()
        assert fits_the_screen(page)
        page.screenshot(path=artifacts / "01-claimed.png")
        assert next_ack(acks, "claimed")

        detail.get_by_role("button", name="确认/通知设备").click()
        expect(detail.locator(".detail-title")).to_contain_text("已通知设备")
        assert next_ack(acks, "help_coming")

        detail.get_by_role("button", name="升级").click()
        detail.get_by_label("升级原因").fill("老人无应答，请主管决定是否呼叫120")
        detail.get_by_role("button", name="确认升级").click()
        expect(detail.locator(".detail-title")).to_contain_text("已升级")
        expect(detail.locator(".timeline-list li").last).to_contain_text("老人无应答")

        detail.get_by_role("button", name="处理完成").click()
        expect(detail.get_by_role("radio")).to_have_count(len(Outcome))  # one for each outcome
        detail.get_by_label("电话已处理").check()
        detail.get_by_label("说明（可选）").fill("老人误按，电话确认无碍")
        page.screenshot(path=artifacts / "02-resolving.png")
        detail.get_by_role("button", name="确认处理完成").click()

        expect(row).to_have_count(0)
        expect(detail.locator(".detail-title")).to_contain_text("已处理")
        expect(detail.locator(".timeline-list li").last).to_contain_text(
            "处理完成wang电话已处理 · 老人误按，电话确认无碍"
        )
        resolved = next_ack(acks, "resolved")
        page.screenshot(path=artifacts / "03-resolved.png")

        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("heading", name="Alert queue")).to_be_visible()
        expect(detail.locator(".detail-title")).to_contain_text("Resolved")
        page.reload()
        expect(page.get_by_role("heading", name="Alert queue")).to_be_visible()
        expect(page.get_by_role("button", name="中文")).to_be_visible()
        expect(detail.locator(".timeline-list li").last).to_contain_text(
            "ResolvedwangResolved by phone"
        )
        page.screenshot(path=artifacts / "04-english.png")

        token = setup.token("wang", PASSWORD)
        alert_id = int(str(resolved["alert_id"]))
        stored = httpx.get(
            f"{setup.api_url}/api/v1/alerts/{alert_id}",
            headers={"Authorization": f"Bearer {token}"},
        ).json()

    assert (stored["status"], stored["outcome"], stored["claimed_by"]) == (
        "resolved",
        "resolved_by_phone",
        "wang",
    )
    assert [e["action"] for e in stored["timeline"]] == [
        "created",
        "claimed",
        "acknowledged",
        "escalated",
        "resolved",
    ]


def test_without_the_stream_the_queue_polls_and_works_by_keyboard(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    """A proxy that breaks Server-Sent Events: the console polls instead. Everything here is
    done with the keyboard only."""
    setup = serving(mosquitto, tmp_path)
    with running_anxin(setup), console_page(browser) as page:
        page.route("**/api/v1/alerts/stream**", lambda route: route.fulfill(status=404))
        page.goto(f"{setup.api_url}/")
        expect(page.get_by_label("用户名")).to_be_focused()
        page.keyboard.type("wang")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page.locator("#connection")).to_have_attribute("data-mode", "polling")

        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-1/sos", SOS)
        row = page.locator('.alert-row[data-device-id="pendant-1"]')
        expect(row).to_be_visible(timeout=10_000)
        expect(page.locator("#announcer")).to_contain_text("新的紧急告警：SOS 紧急呼叫")
        assert page.evaluate("window.__tones") > 0, "no tone was played"

        open_button = row.get_by_role("button", name=OPEN_SOS)
        open_button.focus()
        page.keyboard.press("Enter")
        detail = page.locator("#detail")
        expect(detail.locator(".elder-name")).to_have_text("张桂兰")
        claim = detail.get_by_role("button", name="认领")
        claim.focus()
        page.keyboard.press("Enter")
        expect(detail.locator(".detail-title")).to_contain_text("已认领")

        note = detail.get_by_role("button", name="备注")
        note.focus()
        page.keyboard.press("Enter")
        expect(detail.get_by_label("备注内容")).to_be_focused()
        page.keyboard.type("已联系李明")
        page.keyboard.press("Enter")  # a textarea: a new line, not a submit
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(detail.locator(".timeline-list li").last).to_contain_text("备注wang已联系李明")
        page.screenshot(path=artifacts / "05-polling-note.png")


def test_an_sos_sent_while_the_server_restarts_reaches_the_open_page(
    mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    """The page stays open across a restart of ``anxin serve``: it says the connection is lost,
    comes back by itself, and shows the SOS the broker kept for anxin meanwhile."""
    setup = serving(mosquitto, tmp_path)
    with console_page(browser) as page:
        with running_anxin(setup):
            log_in(page, setup, "wang", PASSWORD)
            expect(page.locator("#connection")).to_have_attribute("data-mode", "live")
        expect(page.locator("#connection")).to_have_attribute("data-mode", "offline")
        expect(page.locator("#connection")).to_have_text("连接中断")
        mosquitto_pub(mosquitto.port, "anxin/v1/pendant-1/sos", SOS)
        with running_anxin(setup):
            row = page.locator('.alert-row[data-device-id="pendant-1"]')
            expect(row).to_be_visible(timeout=15_000)
            expect(page.locator("#connection")).to_have_attribute("data-mode", "live")
            expect(page.get_by_role("heading", name="告警队列")).to_be_visible()
