"""``anxin demo``: the whole system on embedded defaults, with a few simulated devices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial

import structlog

from anxin.broker import embedded_broker, free_port
from anxin.database import open_database, upgrade
from anxin.demo_registry import DEMO_ELDERS, demo_devices, register_demo
from anxin.service import Roles, run_service
from anxin.settings import Settings
from api.users import Role, save_user
from ingest.mqtt import BrokerAddress
from simulators.fleet import DemoFleet, FleetPlan, VirtualDevice

log = structlog.get_logger(__name__)

DEMO_USER = "demo"
DEMO_PASSWORD = "anxin-demo"  # noqa: S105 - printed for the demo's local login
DEMO_DEVICES = tuple(
    VirtualDevice(device_id=device.device_id, model=device.model) for device in demo_devices()
)


def prepare(settings: Settings) -> None:
    """Schema, a supervisor login, the demo's elders and their devices; safe to run again."""
    engine, sessions = open_database(settings.database_url)
    try:
        upgrade(engine)
        with sessions.begin() as session:
            save_user(session, DEMO_USER, DEMO_PASSWORD, Role.SUPERVISOR)
            register_demo(session)
    finally:
        engine.dispose()


@contextlib.asynccontextmanager
async def _broker(settings: Settings) -> AsyncIterator[tuple[BrokerAddress, bool]]:
    if settings.broker is not None:
        yield settings.broker, False
        return
    async with embedded_broker(port=free_port(preferred=settings.embedded_mqtt_port)) as address:
        yield address, True


async def run_demo(settings: Settings) -> None:
    await asyncio.to_thread(prepare, settings)
    async with _broker(settings) as (broker, embedded):
        if embedded:
            # amqtt speaks MQTT 3.1.1; our session stays persistent with clean_session=False.
            settings = settings.model_copy(update={"mqtt_protocol": "3.1.1"})
        fleet = DemoFleet(
            broker.host,
            broker.port,
            DEMO_DEVICES,
            FleetPlan(heartbeat_s=10, sos_every_s=90),
            prefix=settings.mqtt_topic_prefix,
        )
        await run_service(
            settings,
            Roles(ingest=True, api=True),
            broker=broker,
            companion=fleet.run,
            on_ready=partial(_banner, settings, broker, embedded),
        )


def _banner(settings: Settings, broker: BrokerAddress, embedded: bool) -> None:
    url = f"http://{settings.api_host}:{settings.api_port}"
    where = "embedded" if embedded else "external"
    lines = [
        "",
        "  安心 anxin demo is running",
        f"  console   {url}/  (the dispatchers' web page)",
        f"  API       {url}/api/v1/alerts",
        f"  API docs  {url}/docs",
        f"  login     {DEMO_USER} / {DEMO_PASSWORD}",
        f"  broker    mqtt://{broker.host}:{broker.port} ({where})",
        f"  elders    {len(DEMO_ELDERS)} (fictional: 演示), with contacts, notes and devices",
        f"  devices   {len(DEMO_DEVICES)} simulated, heartbeating; the SOS devices pressing it"
        " now and then",
        "  Ctrl-C stops it.",
        "",
    ]
    print("\n".join(lines), flush=True)
