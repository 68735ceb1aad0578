"""Measured, not asserted: time from publishing an SOS to its row on the dispatcher's open page.

Run with `make bench` (or `pytest -m bench -s tests/bench/test_console_latency.py`). A real
Mosquitto, `anxin serve` and Debian's headless Chromium at 1366×768, logged in. Each of 10
rounds publishes an SOS for a new device over an already-connected MQTT client (QoS 1); a
MutationObserver in the page stamps the moment the row is added to the queue. Both stamps are
the machine's wall clock (`time.time()` in Python, `performance.timeOrigin + performance.now()`
in the page), so their difference is the latency. Twice: as served (the alert stream when the
server has it, else polling) and with the stream blocked (polling every 2 s; the publishes are
spread over the poll cycle).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from playwright.sync_api import Page, expect

from tests.support.console import artifacts_dir, chromium, console_page, import_fleet, log_in
from tests.support.mosquitto import Mosquitto
from tests.support.service import AnxinEnv, anxin_env, running_anxin, wait_until

ROUNDS = 10
PASSWORD = "bench-password"
DEVICES = [f"bench-{mode}-{n:02d}" for mode in ("served", "polled") for n in range(ROUNDS)]

STAMP_ROWS = """
window.__rowSeenAt = {};
new MutationObserver((mutations) => {
  const at = performance.timeOrigin + performance.now();
  for (const mutation of mutations) {
    for (const node of mutation.addedNodes) {
      const device = node.dataset && node.dataset.deviceId;
      if (device && !(device in window.__rowSeenAt)) window.__rowSeenAt[device] = at;
    }
  }
}).observe(document.getElementById("queue-list"), { childList: true });
"""


def measure(page: Page, client: paho.Client, devices: list[str], spread_s: float) -> list[float]:
    page.evaluate(STAMP_ROWS)
    latencies_ms = []
    for round_, device in enumerate(devices):
        # Spread over the poll cycle, so that polling is not always measured at one phase.
        time.sleep((round_ * 0.37) % spread_s if spread_s else 0.2)
        published_at = time.time() * 1000
        client.publish(f"anxin/v1/{device}/sos", "{}", qos=1).wait_for_publish(5)
        # The stamp is taken in the page; how often Python looks does not change it.
        seen_at: float = wait_until(
            lambda device=device: page.evaluate(f"window.__rowSeenAt['{device}'] ?? null"),
            within_s=15,
        )
        latencies_ms.append(seen_at - published_at)
    return latencies_ms


def figures(latencies_ms: list[float], mode: str) -> dict[str, object]:
    return {
        "mode": mode,
        "rounds": len(latencies_ms),
        "median_ms": round(statistics.median(latencies_ms), 1),
        "min_ms": round(min(latencies_ms), 1),
        "max_ms": round(max(latencies_ms), 1),
    }


def setup_fleet(mosquitto: Mosquitto, folder: Path) -> AnxinEnv:
    setup = anxin_env(folder / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("bench", PASSWORD, role="supervisor")
    import_fleet(
        setup, folder, "device_id,model\n" + "".join(f"{d},sos-pendant\n" for d in DEVICES)
    )
    return setup


@pytest.mark.bench
def test_sos_publish_to_row_on_the_page(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = setup_fleet(mosquitto, tmp_path)
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    results = []
    try:
        with running_anxin(setup), chromium() as browser:
            with console_page(browser) as page:
                log_in(page, setup, "bench", PASSWORD)
                expect(page.locator("#connection")).to_have_attribute(
                    "data-mode", re.compile("live|polling")
                )
                mode = page.locator("#connection").get_attribute("data-mode") or "?"
                served = measure(page, client, DEVICES[:ROUNDS], spread_s=0)
                results.append(figures(served, f"as served ({mode})"))
                page.screenshot(path=artifacts_dir() / "bench-queue.png")
            with console_page(browser) as page:
                page.route("**/api/v1/alerts/stream**", lambda route: route.fulfill(status=404))
                log_in(page, setup, "bench", PASSWORD)
                expect(page.locator("#connection")).to_have_attribute("data-mode", "polling")
                polled = measure(page, client, DEVICES[ROUNDS:], spread_s=2.0)
                results.append(figures(polled, "stream blocked (polling)"))
    finally:
        client.disconnect()
        client.loop_stop()
    for result in results:
        print("\nSOS publish → row on the console page:", json.dumps(result, ensure_ascii=False))
    assert all(r["rounds"] == ROUNDS for r in results)
