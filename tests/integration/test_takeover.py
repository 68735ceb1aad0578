"""A live ingest member drains the broker session of a gone one, on a real Mosquitto and
PostgreSQL: what the session held is stored, the session is ended, the row forgotten."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.feed import AlertFeed
from alerting.store import AlertRow
from anxin.database import open_database, upgrade
from devices.codec import NativeCodec
from ingest.decoding import MessageDecoder
from ingest.membership import MemberRow
from ingest.mqtt import BrokerAddress, MqttConnection, SessionOptions
from ingest.pipeline import IngestPipeline
from ingest.service import IngestService
from ingest.takeover import Members, TakeoverOptions
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import mosquitto_pub

pytestmark = pytest.mark.integration

SHARED = ["$share/anxin/anxin/v1/+/sos"]


@pytest.fixture
def database(postgres_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    engine, sessions = open_database(postgres_url)
    upgrade(engine)
    yield engine, sessions
    engine.dispose()


def service(connection: MqttConnection, sessions: sessionmaker[Session]) -> IngestService:
    pipeline = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=RulesEngine(),
        telemetry_points=False,
    )
    return IngestService(
        connection=connection, pipeline=pipeline, feed=AlertFeed(), topic_prefix="anxin/v1"
    )


def session_present(port: int, client_id: str) -> bool:
    """Connect under ``client_id`` (clean start off) and say whether the broker had a session."""
    flags: queue.Queue[bool] = queue.Queue()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_connect = lambda _c, _u, f, _r, _p: flags.put(bool(f.session_present))
    client.connect("127.0.0.1", port, clean_start=False)
    client.loop_start()
    try:
        return flags.get(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_live_member_drains_and_ends_a_gone_members_session(
    mosquitto: Mosquitto, database: tuple[Engine, sessionmaker[Session]]
) -> None:
    engine, sessions = database
    broker = BrokerAddress(host=mosquitto.host, port=mosquitto.port)

    async def scenario() -> tuple[int, int, bool]:
        # The gone member: subscribed in the group, then away; its session keeps its share.
        gone = MqttConnection(broker, SessionOptions(client_id="ingest.gone", subscriptions=SHARED))
        await gone.start()
        assert await gone.wait_connected(10)
        await gone.stop()
        with sessions.begin() as session:
            session.add(
                MemberRow(
                    client_id="ingest.gone",
                    subscriptions=SHARED,
                    joined_at=datetime.now(UTC) - timedelta(hours=1),
                    seen_at=datetime.now(UTC) - timedelta(hours=1),
                )
            )
        # The live member, in the group too: the broker shares the presses between the two.
        options = SessionOptions(client_id="ingest.live", subscriptions=SHARED)
        live = MqttConnection(broker, options)
        await live.start()
        assert await live.wait_connected(10)
        own = service(live, sessions)
        stop = asyncio.Event()
        running = asyncio.create_task(own.run())
        for n in range(20):
            await asyncio.to_thread(mosquitto_pub, mosquitto.port, f"anxin/v1/d-{n}/sos", "{}")
        members = Members(
            engine=engine,
            broker=broker,
            session=options,
            drain_service=lambda connection: service(connection, sessions),
            options=TakeoverOptions(grace_s=1.0, quiet_s=0.5),
        )
        watching = asyncio.create_task(members.run(stop))
        for _ in range(300):
            if members.drained:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await watching
        own.stop()
        live.interrupt()
        await running
        await live.stop()
        (result,) = members.drained
        assert result.client_id == "ingest.gone"
        return result.messages, own.handled, result.ended

    drained, handled, ended = asyncio.run(scenario())
    with sessions() as session:
        alerts = session.scalar(select(func.count()).select_from(AlertRow))
        rows = session.scalars(select(MemberRow.client_id)).all()
    assert drained > 0  # the gone member's share, which only the takeover could store
    assert drained + handled == 20
    assert alerts == 20
    assert ended
    assert "ingest.gone" not in rows  # forgotten; the live member's own row is there
    assert "ingest.live" in rows
    # The session was ended (MQTT 5 session expiry 0 at DISCONNECT): nothing is left in it.
    assert not session_present(mosquitto.port, "ingest.gone")
