"""The ingest pipeline on real SQLite and PostgreSQL databases: one batch, one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import DeviceState, Evaluation, RulesEngine
from alerting.store import AlertEventRow, AlertRow, ChangeKind
from devices.codec import NativeCodec
from devices.elders import ElderRow
from devices.events import DeviceEvent
from devices.registry import DeviceRow, register_device
from ingest.dead_letters import DeadLetterRow
from ingest.decoding import MessageDecoder
from ingest.mqtt import Delivery
from ingest.pipeline import IngestPipeline
from tests.support.mqtt import delivery as mqtt_delivery

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def delivery(topic: str, payload: bytes, at: datetime = T0, mid: int = 1) -> Delivery:
    return mqtt_delivery(topic, payload, at, mid=mid)


def pipeline(sessions: sessionmaker[Session]) -> IngestPipeline:
    return IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=RulesEngine(),
        clock=lambda: T0,
    )


def test_one_batch_stores_alerts_sightings_and_dead_letters(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        session.add(ElderRow(id=17, name="张秀英"))
        session.flush()
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


def test_a_batchs_timeline_is_written_in_the_order_of_its_writes(
    sessions: sessionmaker[Session],
) -> None:
    """The timeline rows of a batch's alert writes (batched_timeline: one INSERT at the end)
    follow the writes: ids in order, each on its alert, as the ORM's flush wrote them."""
    with sessions.begin() as session:
        register_device(session, "p1", "sos-pendant")
        register_device(session, "p2", "sos-pendant")
    seconds = iter(range(100))

    def at(topic: str, payload: bytes) -> Delivery:
        return delivery(topic, payload, T0 + timedelta(seconds=next(seconds)))

    batch = [
        at("anxin/v1/p1/heartbeat", b'{"battery": 5}'),  # low battery: opened (one INSERT)
        at("anxin/v1/p2/sos", b'{"seq": 1}'),  # opened (one INSERT)
        at("anxin/v1/p1/heartbeat", b'{"battery": 90}'),  # resolved
        at("anxin/v1/p2/sos", b'{"seq": 2}'),  # coalesced
        at("anxin/v1/p1/heartbeat", b'{"battery": 4}'),  # opened again (raise_or_coalesce)
        at("anxin/v1/p1/heartbeat", b'{"battery": 95}'),  # resolved again
    ]
    pipeline(sessions).store_batch(batch)
    with sessions() as session:
        alerts = {
            row.id: (row.device_id, row.type, row.status, row.count)
            for row in session.scalars(select(AlertRow).order_by(AlertRow.id))
        }
        timeline = [
            (alerts[e.alert_id][:2], e.action, e.actor, e.at, e.detail)
            for e in session.scalars(select(AlertEventRow).order_by(AlertEventRow.id))
        ]
    assert list(alerts.values()) == [
        ("p1", "low_battery", "resolved", 1),
        ("p2", "sos", "new", 2),
        ("p1", "low_battery", "resolved", 1),
    ]
    low, sos = ("p1", "low_battery"), ("p2", "sos")
    assert [(alert, action, actor) for alert, action, actor, _at, _detail in timeline] == [
        (low, "created", "device:p1"),
        (sos, "created", "device:p2"),
        (low, "auto_resolved", "system"),
        (sos, "coalesced", "device:p2"),
        (low, "created", "device:p1"),
        (low, "auto_resolved", "system"),
    ]
    assert {at for _alert, _action, _actor, at, _detail in timeline} == {T0}  # the batch's now
    assert timeline[3][4] == {"count": 2}
    assert timeline[2][4] == {"reason": "battery at 90%"}


def test_a_redelivered_sos_is_not_counted_twice(sessions: sessionmaker[Session]) -> None:
    run = pipeline(sessions)
    first = run.store_batch([delivery("anxin/v1/p1/sos", b'{"seq": 41}')])
    again = run.store_batch([delivery("anxin/v1/p1/sos", b'{"seq": 41}')])  # broker redelivery
    pressed_again = run.store_batch([delivery("anxin/v1/p1/sos", b'{"seq": 42}')])
    assert [c.kind for c in first.changes] == [ChangeKind.CREATED]
    assert again.changes == []  # nothing changed, nothing to announce
    assert [a.alert_id for a in again.device_acks] == [first.changes[0].alert_id]  # re-told
    assert [c.kind for c in pressed_again.changes] == [ChangeKind.UPDATED]
    with sessions() as session:
        (row,) = session.scalars(select(AlertRow)).all()
    assert row.count == 2


def test_odd_values_in_unknown_fields_are_stored_with_the_sos(
    sessions: sessionmaker[Session],
) -> None:
    # NaN and infinities are not JSON, and PostgreSQL's json refuses them: they are kept as
    # text. A NUL character becomes U+FFFD (PostgreSQL's jsonb and text refuse NUL).
    payload = b'{"x": NaN, "nested": {"y": [Infinity, -Infinity]}, "z": "a\\u0000b", "floor": 3}'
    result = pipeline(sessions).store_batch([delivery("anxin/v1/p1/sos", payload)])
    assert [c.kind for c in result.changes] == [ChangeKind.CREATED]
    with sessions() as session:
        (row,) = session.scalars(select(AlertRow)).all()
    assert "payload_error" not in row.attributes
    assert row.attributes["x"] == "nan"
    assert row.attributes["nested"] == {"y": ["inf", "-inf"]}
    assert row.attributes["z"] == "a\ufffdb"
    assert row.attributes["floor"] == 3


class PoisonedEngine(RulesEngine):
    """Stands in for a store that refuses one message for good (a DataError)."""

    def evaluate(self, state: DeviceState, event: DeviceEvent, now: datetime) -> Evaluation:
        if "poison" in event.attributes:
            raise DataError("INSERT ...", {}, Exception("value out of range"))
        return super().evaluate(state, event, now)


def test_a_message_the_store_refuses_does_not_hold_up_the_rest(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        register_device(session, "p1", "sos-pendant")
    run = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=PoisonedEngine(),
        clock=lambda: T0,
    )
    result = run.store(
        [
            delivery("anxin/v1/p1/heartbeat", b"{}"),
            delivery("anxin/v1/p1/sos", b'{"poison": 1}'),
            delivery("anxin/v1/p2/sos", b"{}"),
            delivery("anxin/v1/p1/event", b'{"type": "smoke", "poison": 1}'),
        ]
    )
    with sessions() as session:
        alerts = {a.device_id: a for a in session.scalars(select(AlertRow))}
        letters = session.scalars(select(DeadLetterRow)).all()
        device = session.get(DeviceRow, "p1")
    # The SOS the store refused is still an alert, marked; the smoke event is a dead letter.
    assert sorted(alerts) == ["p1", "p2"]
    assert alerts["p1"].attributes["payload_error"].startswith("could not be stored: ")
    assert [(d.topic, d.reason.split(":")[0]) for d in letters] == [
        ("anxin/v1/p1/event", "could not be stored")
    ]
    assert result.dead_letters == 1
    assert device is not None
    assert device.last_seen_at == T0


class BuggyEngine(RulesEngine):
    """A bug that only some input triggers must not stop the pipeline."""

    def evaluate(self, state: DeviceState, event: DeviceEvent, now: datetime) -> Evaluation:
        if event.attributes.get("trigger_bug"):
            raise OverflowError("int too large to convert")
        return super().evaluate(state, event, now)


def test_a_bug_one_message_triggers_is_isolated_even_alone(
    sessions: sessionmaker[Session],
) -> None:
    run = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=BuggyEngine(),
        clock=lambda: T0,
    )
    alone = run.store([delivery("anxin/v1/p1/sos", b'{"trigger_bug": true}')])
    mixed = run.store(
        [
            delivery("anxin/v1/p2/event", b'{"type": "smoke", "trigger_bug": true}'),
            delivery("anxin/v1/p3/sos", b"{}"),
        ]
    )
    assert [a.device_id for a in alone.device_acks] == ["p1"]  # still an SOS, still told
    assert [r.reason.split(":")[0] for r in mixed.rejected] == ["could not be stored"]
    with sessions() as session:
        alerts = {a.device_id: a for a in session.scalars(select(AlertRow))}
    assert sorted(alerts) == ["p1", "p3"]
    assert "OverflowError" in alerts["p1"].attributes["payload_error"]


def test_a_contact_id_sos_that_cannot_be_stored_is_still_raised(
    sessions: sessionmaker[Session],
) -> None:
    run = IngestPipeline(
        sessions=sessions,
        decoder=MessageDecoder(native=NativeCodec()),
        engine=PoisonedEngine(),
        clock=lambda: T0,
    )
    run.store([delivery("anxin/v1/panel/event", b'{"cid": "1101", "poison": 1}')])
    with sessions() as session:
        (alert,) = session.scalars(select(AlertRow)).all()
    assert (alert.device_id, alert.type) == ("panel", "sos")
    assert alert.attributes["payload_error"].startswith("could not be stored: ")
