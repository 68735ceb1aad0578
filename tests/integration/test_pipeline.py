"""The ingest pipeline on a real SQLite database: one batch, one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.store import AlertRow, ChangeKind
from devices.codec import NativeCodec
from devices.registry import DeviceRow, register_device
from ingest.dead_letters import DeadLetterRow
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def delivery(topic: str, payload: bytes, at: datetime = T0, mid: int = 1) -> Delivery:
    return Delivery(
        topic=topic, payload=payload, qos=1, retain=False, mid=mid, connection=1, received_at=at
    )


def pipeline(sessions: sessionmaker[Session]) -> IngestPipeline:
    return IngestPipeline(
        sessions=sessions, codec=NativeCodec(), engine=RulesEngine(), clock=lambda: T0
    )


def test_one_batch_stores_alerts_sightings_and_dead_letters(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        register_device(session, "p1", "sos-pendant", elder_id=17)
    batch = [
        delivery("anxin/v1/p1/heartbeat", b'{"battery": 80}', T0),
        delivery("anxin/v1/p1/sos", b'{"trigger": "button"}', T0 + timedelta(seconds=1)),
        delivery("anxin/v1/p1/sos", b"{}", T0 + timedelta(seconds=2)),
        delivery("anxin/v1/p1/heartbeat", b'{"battery": 79}', T0 + timedelta(seconds=3)),
        delivery("anxin/v1/nobody/heartbeat", b"{}"),
        delivery("anxin/v1/p1/event", b"not json"),
        delivery("random/topic", b"\x00\x01"),
    ]
    result = pipeline(sessions).store_batch(batch)

    assert [c.kind for c in result.changes] == [ChangeKind.CREATED, ChangeKind.UPDATED]
    assert [(a.device_id, a.alert_id) for a in result.device_acks] == [
        ("p1", result.changes[0].alert_id)
    ] * 2
    assert result.dead_letters == 3
    with sessions() as session:
        (sos,) = session.scalars(select(AlertRow)).all()
        device = session.get(DeviceRow, "p1")
        letters = session.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id)).all()
    assert (sos.type, sos.count, sos.elder_id) == ("sos", 2, 17)
    assert device is not None
    assert device.last_seen_at == T0 + timedelta(seconds=3)
    assert device.battery == 79
    assert (letters[0].topic, letters[0].reason) == (
        "anxin/v1/nobody/heartbeat",
        "unknown device",
    )
    assert letters[2].payload == b"\x00\x01"


def test_last_seen_never_moves_back(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        register_device(session, "p1", "sos-pendant")
    run = pipeline(sessions)
    run.store_batch([delivery("anxin/v1/p1/heartbeat", b"{}", T0 + timedelta(minutes=5))])
    run.store_batch([delivery("anxin/v1/p1/heartbeat", b'{"battery": 50}', T0)])
    with sessions() as session:
        device = session.get(DeviceRow, "p1")
    assert device is not None
    assert device.last_seen_at == T0 + timedelta(minutes=5)
