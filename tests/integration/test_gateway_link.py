"""The gateways' shared base against a real Mosquitto and a real ``anxin serve``: a publish
returns on the broker's PUBACK, an SOS on anxin's Ack ``received`` for its seq, and nothing is
queued while the broker is away."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from anxin.gateway import run_gateway
from anxin.settings import load_settings
from devices.topics import Downlink, Uplink
from gateways.link import AckTimeoutError, GatewayLink, LinkOptions, LinkUnavailableError
from ingest.mqtt import BrokerAddress
from tests.integration.test_sos_path import PASSWORD, alert_of, register
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub
from tests.support.ports import free_port
from tests.support.service import anxin_env, running_anxin

T = TypeVar("T")


def with_link(
    broker: BrokerAddress, work: Callable[[GatewayLink], Awaitable[T]], *, name: str = "test"
) -> T:
    """Run ``work`` with a connected link (or one that never connects), then stop the link."""

    async def main() -> T:
        link = GatewayLink(broker, LinkOptions(client_id=f"gw-{name}"), name=name)
        stop = asyncio.Event()
        runner = asyncio.create_task(link.run(stop))
        try:
            await link.wait_connected(5)
            return await work(link)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)

    return asyncio.run(main())


def test_sos_returns_only_once_anxin_stored_it(mosquitto: Mosquitto, tmp_path: Path) -> None:
    setup = anxin_env(tmp_path / "anxin", ANXIN_MQTT_URL=mosquitto.url)
    setup.add_user("dispatcher1", PASSWORD)
    register(setup, "watch-1", "sos-pendant")
    broker = BrokerAddress(host=mosquitto.host, port=mosquitto.port)
    heard: list[tuple[str, Downlink, bytes]] = []

    async def press_twice(link: GatewayLink) -> tuple[int, int]:
        link.on_downlink = lambda *downlink: heard.append(downlink)
        await link.publish("watch-1", Uplink.HEARTBEAT, b'{"battery": 80}')
        sos = json.dumps({"trigger": "watch", "seq": 42}).encode()
        first = await link.publish_sos("watch-1", sos, seq=42, within_s=10)
        # The device resends the same press: the same alert, the same Ack, counted once.
        again = await link.publish_sos("watch-1", sos, seq=42, within_s=10)
        assert link.acks_waiting == 0
        return first.alert_id, again.alert_id

    with running_anxin(setup):
        token = setup.token("dispatcher1", PASSWORD)
        first_id, again_id = with_link(broker, press_twice)
        alert = alert_of(setup, token, "watch-1")

    assert alert is not None
    assert first_id == again_id == alert["id"]
    assert alert["count"] == 1
    assert alert["attributes"]["seq"] == 42
    acks = [
        json.loads(p) for device, kind, p in heard if device == "watch-1" and kind is Downlink.ACK
    ]
    assert [a["seq"] for a in acks] == [42, 42]


def test_sos_without_ingest_is_not_taken_for_stored(mosquitto: Mosquitto) -> None:
    """The broker PUBACKs, nobody stores: the caller hears AckTimeoutError, not success."""
    broker = BrokerAddress(host=mosquitto.host, port=mosquitto.port)

    async def press(link: GatewayLink) -> int:
        assert link.connected
        with pytest.raises(AckTimeoutError):
            await link.publish_sos("watch-2", b'{"seq": 7}', seq=7, within_s=0.3)
        return link.acks_waiting

    assert with_link(broker, press) == 0


def test_publish_without_a_broker_raises_at_once() -> None:
    broker = BrokerAddress(host="127.0.0.1", port=free_port())

    async def publish(link: GatewayLink) -> None:
        assert not link.connected
        with pytest.raises(LinkUnavailableError):
            await link.publish("watch-3", Uplink.HEARTBEAT, b"{}")
        with pytest.raises(LinkUnavailableError):
            await link.publish_sos("watch-3", b'{"seq": 1}', seq=1, within_s=5)
        assert link.acks_waiting == 0

    async def main() -> None:
        link = GatewayLink(broker, LinkOptions(client_id="gw-none"), name="none")
        stop = asyncio.Event()
        runner = asyncio.create_task(link.run(stop))
        await asyncio.sleep(0.2)  # a first connection attempt has been refused by now
        try:
            await publish(link)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 5)

    asyncio.run(main())


class _IdleServer:
    """The smallest gateway server: listens nowhere, reports one readiness check."""

    def __init__(self) -> None:
        self.downlinks: list[tuple[str, Downlink]] = []

    async def serve(self, stop: asyncio.Event) -> None:
        await stop.wait()

    def on_downlink(self, device_id: str, kind: Downlink, payload: bytes) -> None:
        self.downlinks.append((device_id, kind))

    def readiness(self) -> Mapping[str, Callable[[], bool]]:
        return {"listener": lambda: True}


def test_a_gateway_role_answers_health_readiness_and_metrics(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    settings = load_settings(api_host="127.0.0.1", api_port=port, var_dir=tmp_path)
    broker = BrokerAddress(host=mosquitto.host, port=mosquitto.port)
    server = _IdleServer()

    async def main() -> tuple[int, dict[str, object], str]:
        ready = asyncio.Event()
        task = asyncio.create_task(
            run_gateway(settings, "idle", broker, lambda _link: server, on_ready=ready.set)
        )
        await asyncio.wait_for(ready.wait(), 10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            readyz = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
        # A Command from anxin reaches the server (which keeps what is for its devices).
        command = '{"command":"locate","params":{},"id":"' + "0" * 32 + '"}'
        await asyncio.to_thread(mosquitto_pub, mosquitto.port, "anxin/v1/watch-4/cmd", command)
        for _ in range(200):
            if server.downlinks:
                break
            await asyncio.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)  # what systemd does: the role stops cleanly
        await asyncio.wait_for(task, 10)
        return readyz.status_code, readyz.json(), metrics

    code, body, metrics = asyncio.run(main())
    assert code == 200
    assert body == {"status": "ready", "checks": {"broker": True, "listener": True}}
    assert 'anxin_gateway_broker_connected{gateway="idle"} 1.0' in metrics
    assert server.downlinks == [("watch-4", Downlink.CMD)]
