"""Zigbee2MQTT publications through the ingest pipeline, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.store import AlertRow
from devices.codec import NativeCodec
from devices.registry import DeviceRow
from ingest.dead_letters import DeadLetterRow
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from tests.support.mqtt import delivery as mqtt_delivery

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def delivery(topic: str, payload: str, mid: int = 1) -> Delivery:
    return mqtt_delivery(topic, payload, T0, qos=0, mid=mid)


def test_zigbee_buttons_and_sensors_reach_the_registry_and_the_queue(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        session.add(DeviceRow(id="btn-17", model="sos-button", zigbee_name="客厅/紧急按钮"))
        session.add(DeviceRow(id="leak-17", model="water-leak", zigbee_name="卫生间/漏水"))
    pipeline = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=RulesEngine(),
        clock=lambda: T0,
    )
    result = pipeline.store_batch(
        [
            delivery("zigbee2mqtt/卫生间/漏水", '{"water_leak": false, "battery": 91}'),
            delivery("zigbee2mqtt/客厅/紧急按钮", '{"action": "single", "battery": 80}'),
            delivery("zigbee2mqtt/卫生间/漏水/availability", '{"state": "online"}'),
            delivery("zigbee2mqtt/陌生按钮", '{"action": "emergency"}'),
            delivery("zigbee2mqtt/陌生传感器", '{"occupancy": true}'),
            delivery("zigbee2mqtt/bridge/state", '{"state": "online"}'),
        ]
    )
    with sessions() as session:
        alerts = {a.device_id: a for a in session.scalars(select(AlertRow))}
        leak = session.get(DeviceRow, "leak-17")
        letters = [(d.topic, d.reason) for d in session.scalars(select(DeadLetterRow))]
    # A press on a registered SOS button is that device's SOS; an emergency action from a
    # name nobody registered is still an SOS, marked so.
    assert len(alerts) == 2
    (stranger,) = (a for d, a in alerts.items() if d != "btn-17")
    assert stranger.attributes["unregistered_device"] is True
    assert alerts["btn-17"].type == "sos"
    assert leak is not None
    assert (leak.last_seen_at, leak.battery) == (T0, 91)
    assert letters == [("zigbee2mqtt/陌生传感器", "unknown zigbee device 陌生传感器")]
    assert len(result.changes) == 2
