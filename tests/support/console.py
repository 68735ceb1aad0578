"""The dispatcher console in a real headless Chromium (Debian's), driven by Playwright.

Playwright never downloads a browser here: it launches the ``chromium`` package's binary
(``ANXIN_CHROMIUM`` to use another). Screenshots go to ``test-artifacts/console/`` at the top
of the repository (``ANXIN_TEST_ARTIFACTS`` to put them elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.service import AnxinEnv

CHROMIUM = os.environ.get("ANXIN_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 768}
REPO = Path(__file__).resolve().parents[2]

# Counts the tones the page starts (Web Audio), so a test can tell the cue was played.
COUNT_TONES = """
window.__tones = 0;
const originalStart = AudioScheduledSourceNode.prototype.start;
AudioScheduledSourceNode.prototype.start = function (...args) {
  window.__tones += 1;
  return originalStart.apply(this, args);
};
"""

# One elder with two devices, one contact a row: contacts in calling order.
FLEET_CSV = """\
device_id,model,elder_id,elder_name,elder_phone,address,community,categories,contact_name,contact_phone,contact_relation,room,medical_notes,key_safe_note
pendant-1,sos-pendant,E001,张桂兰,13800138001,幸福社区3号楼2单元401,张家口市/张北县/花园街道/幸福社区,独居;高龄,李明,13900139001,子女,卧室,高血压，服用降压药,备用钥匙在邻居王芳家
smoke-1,smoke-detector,E001,张桂兰,13800138001,,,,王芳,13700137002,邻居,厨房,,
"""


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("ANXIN_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def console_page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile at 1366×768 in Chinese (the dispatchers' locale)."""
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.add_init_script(COUNT_TONES)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def import_fleet(setup: AnxinEnv, folder: Path, csv: str = FLEET_CSV) -> None:
    path = folder / "fleet.csv"
    path.write_text(csv, encoding="utf-8")
    result = setup.cli("devices", "import", str(path))
    assert result.returncode == 0, result.stderr


def log_in(page: Page, setup: AnxinEnv, username: str, password: str) -> None:
    page.goto(f"{setup.api_url}/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="告警队列")).to_be_visible()
