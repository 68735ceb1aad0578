"""`anxin gateway dc09` against a real Mosquitto and a real `anxin serve`: a hub's alarm
becomes an alert, and its ACK comes only once the alert is stored; `anxin simulate --dc09`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from simulators.dc09_hub import HubClient, HubFrames
from tests.integration.test_sos_path import PASSWORD, alert_of, open_alerts, query, register
from tests.support.mosquitto import Mosquitto
from tests.support.ports import free_port
from tests.support.service import AnxinEnv, anxin_env, running_anxin, running_role, wait_until

KEY = "0123456789ABCDEF"
ACCOUNTS = f"""
[accounts."1234"]
device_id = "hub-1234"
[accounts."5678"]
device_id = "hub-5678"
key = "{KEY}"
key_encoding = "text"
code_table = "climax"
"""


@dataclass(frozen=True)
class Gateway:
    port: int  # DC-09, TCP and UDP
    api_port: int  # /healthz, /readyz, /metrics

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.api_port}/metrics", timeout=5).text


@contextmanager
def running_gateway(setup: AnxinEnv, mosquitto: Mosquitto, **env: str) -> Iterator[Gateway]:
    """`anxin gateway dc09` on a free port (TCP and UDP), once its /readyz says ready."""
    port = free_port()
    accounts = setup.folder / "dc09-accounts.toml"
    accounts.write_text(ACCOUNTS)
    api_port = free_port()
    environment = {
        "ANXIN_API_PORT": str(api_port),
        "ANXIN_DC09_MQTT_URL": mosquitto.url,
        "ANXIN_DC09_LISTEN": f"127.0.0.1:{port}",
        "ANXIN_DC09_ACCOUNTS": str(accounts),
        **env,
    }
    with running_role(setup, "gateway", "dc09", env=environment):
        yield Gateway(port=port, api_port=api_port)


def dead_letter_reasons(setup: AnxinEnv) -> list[str]:
    return [row[0] for row in query(setup.database_path, "SELECT reason FROM dead_letters")]


def test_a_hubs_alarms_become_alerts_and_each_ack_follows_the_store(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    register(setup, "hub-1234", "dc09-panel")
    register(setup, "hub-5678", "dc09-panel")
    plain, sealed = HubFrames(account="1234"), HubFrames(account="5678", key=KEY)
    with running_anxin(setup):  # ingest's persistent session exists from here on
        pass
    first_sos = plain.sos(datetime.now(UTC), zone=3)

    async def send_sos(port: int) -> str | None:
        client = HubClient("127.0.0.1", port, max_attempts=1, reply_timeout_s=5)
        try:
            return (await client.deliver(first_sos)).reply
        finally:
            await client.close()

    async def report(port: int, token: str) -> dict[str, Any]:
        tcp = HubClient("127.0.0.1", port, max_attempts=1)
        udp = HubClient("127.0.0.1", port, transport="udp", max_attempts=1)
        now = datetime.now(UTC)
        seen: dict[str, Any] = {"null": (await tcp.deliver(plain.null(now))).reply}
        # The panel resends its SOS: ACKed once the alert is stored, so it is there at once.
        seen["sos_ack"] = (await tcp.deliver(first_sos)).reply
        seen["sos_alert"] = alert_of(setup, token, "hub-1234")
        seen["smoke"] = (await udp.deliver(plain.sia("FA", now, zone=2))).reply
        seen["fall"] = (await tcp.deliver(sealed.contact_id("102", now))).reply  # climax: fall
        seen["unknown"] = (await tcp.deliver(plain.sia("ZX", now))).reply
        await tcp.close()
        return seen

    with running_gateway(setup, mosquitto, ANXIN_DC09_SOS_ACK_TIMEOUT_S="1") as gateway:
        port = gateway.port
        # anxin is down: the broker takes the SOS, but nobody stores it, so the hub gets no ACK.
        assert asyncio.run(send_sos(port)) is None
        with running_anxin(setup):
            token = setup.token("dispatcher1", PASSWORD)
            seen = asyncio.run(report(port, token))
            alerts = wait_until(
                lambda: found if len(found := open_alerts(setup, token)) >= 3 else None
            )
            letters = wait_until(lambda: dead_letter_reasons(setup) or None)
        # `anxin simulate` too: its DC-09 hubs report to the gateway, each frame ACKed.
        simulated = setup.cli(
            "simulate", "--models", "dc09-panel", "--devices", "3", "--rate", "6",
            "--duration", "3s", "--dc09", f"127.0.0.1:{port}", "--dc09-accounts",
            str(setup.folder / "simulated.toml"), "--json",
        )  # fmt: skip
        metrics = gateway.metrics()

    assert seen["null"] == "ACK"
    assert seen["sos_ack"] == "ACK"
    sos = seen["sos_alert"]
    assert sos is not None
    assert (sos["attributes"]["cid"], sos["attributes"]["zone"]) == ("1101", "003")
    assert sos["count"] == 1  # the SOS queued while anxin was away and its resend: once
    assert seen["smoke"] == "ACK"
    assert seen["fall"] == "ACK"
    assert seen["unknown"] == "DUH"
    kinds = {(a["device_id"], a["type"]) for a in alerts}
    assert {("hub-1234", "sos"), ("hub-1234", "smoke"), ("hub-5678", "fall")} <= kinds
    assert letters == ["dc09: unknown SIA code ZX (table standard)"]
    assert simulated.returncode == 0, simulated.stderr
    summary = json.loads(simulated.stdout)["dc09"]
    assert summary["hubs"] == 3
    assert summary["replies"]["ACK"] >= 3
    assert set(summary["replies"]) == {"ACK"}
    accounts = (setup.folder / "simulated.toml").read_text()
    assert 'device_id = "sim-00001-dc09-panel"' in accounts
    for line in (
        'anxin_dc09_unanswered_total{cause="ack_timeout"} 1.0',
        'anxin_dc09_replies_total{reply="duh"} 1.0',
        "anxin_dc09_dead_letters_total 1.0",
        'anxin_dc09_frames_total{kind="*ADM-CID",transport="tcp"} 1.0',
        'anxin_dc09_frames_total{kind="SIA-DCS",transport="udp"} 1.0',
    ):
        assert line in metrics, line
