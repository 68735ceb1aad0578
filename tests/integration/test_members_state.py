"""Per-device state across ingest members: one device's messages spread over three pipelines
(three members) on one PostgreSQL database give what one pipeline gives.

The rate limit (occurrences counted in the last minute), Zigbee2MQTT's state memory and the
fall's cancel window all come from the database, read in the batch's transaction and locked
where two members could race.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.store import AlertRow, get_timeline
from anxin.database import open_database, upgrade
from devices.codec import NativeCodec
from devices.registry import DeviceRow
from ingest.decoding import MessageDecoder
from ingest.pipeline import IngestPipeline
from tests.support.mqtt import delivery

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
LIMIT = 30  # default_rules.toml: occurrences a minute counted on an open alert


@pytest.fixture
def database(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_database(postgres_url)
    upgrade(engine)
    yield sessions
    engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def tick(self, seconds: float = 0.1) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


def members(sessions: sessionmaker[Session], clock: Clock, count: int = 3) -> list[IngestPipeline]:
    return [
        IngestPipeline(
            sessions=sessions,
            decoder=MessageDecoder(native=NativeCodec()),
            engine=RulesEngine(),
            clock=clock,
            telemetry_points=False,
        )
        for _ in range(count)
    ]


def sos(device: str, seq: int, at: datetime) -> list:  # type: ignore[type-arg]
    return [delivery(f"anxin/v1/{device}/sos", f'{{"seq": {seq}}}', at, mid=seq)]


def the_alert(sessions: sessionmaker[Session], device: str) -> AlertRow:
    with sessions() as session:
        (row,) = session.scalars(select(AlertRow).where(AlertRow.device_id == device)).all()
        return row


def test_a_stuck_button_over_three_members_counts_as_over_one(
    database: sessionmaker[Session],
) -> None:
    clock = Clock()
    spread = members(database, clock)
    for seq in range(1, 41):
        spread[seq % 3].store(sos("stuck", seq, clock()))
        clock.tick()
    # One member would count the first press and the repeats up to the limit: so do three.
    assert the_alert(database, "stuck").count == LIMIT


def test_members_pressing_one_stuck_button_at_once_do_not_count_past_the_limit(
    database: sessionmaker[Session],
) -> None:
    clock = Clock()
    spread = members(database, clock)
    start = threading.Barrier(3)

    def member(index: int) -> None:
        start.wait()
        for seq in range(index + 1, 61, 3):  # 20 presses each, all at the same moment
            spread[index].store(sos("stuck", seq, clock()))

    threads = [threading.Thread(target=member, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # The open alert is locked before the rate limit is read: each member sees the others'.
    assert the_alert(database, "stuck").count == LIMIT


def test_the_rate_limit_forgets_after_a_minute_whoever_counted(
    database: sessionmaker[Session],
) -> None:
    clock = Clock()
    spread = members(database, clock)
    for seq in range(1, 36):
        spread[seq % 3].store(sos("stuck", seq, clock()))
    clock.tick(61)
    spread[0].store(sos("stuck", 100, clock()))
    assert the_alert(database, "stuck").count == LIMIT + 1


def test_a_zigbee_alarm_seen_by_one_member_is_known_to_the_others(
    database: sessionmaker[Session],
) -> None:
    with database.begin() as session:
        session.add(DeviceRow(id="leak-1", model="water-leak", zigbee_name="卫生间/漏水"))
    clock = Clock()
    first, second, third = members(database, clock)
    topic = "zigbee2mqtt/卫生间/漏水"
    first.store([delivery(topic, '{"water_leak": true, "battery": 90}', clock(), qos=0)])
    clock.tick(10)
    # Zigbee2MQTT sends the whole cached state again: the alarm is still the same one.
    second.store([delivery(topic, '{"water_leak": true, "battery": 89}', clock(), qos=0)])
    clock.tick(10)
    # The clear, on a member that never saw the alarm: still the alarm's restore.
    third.store([delivery(topic, '{"water_leak": false, "battery": 89}', clock(), qos=0)])
    alert = the_alert(database, "leak-1")
    with database() as session:
        actions = [event.action for event in get_timeline(session, alert.id)]
    assert alert.count == 1
    assert actions == ["created", "restored"]


def test_a_fall_cancelled_on_another_member_within_the_window_is_cancelled(
    database: sessionmaker[Session],
) -> None:
    with database.begin() as session:
        session.add(DeviceRow(id="fall-1", model="fall-detector"))
        session.add(DeviceRow(id="fall-2", model="fall-detector"))
    clock = Clock()
    first, second, _ = members(database, clock)
    for device in ("fall-1", "fall-2"):
        first.store([delivery(f"anxin/v1/{device}/event", '{"type": "fall"}', clock())])
    clock.tick(5)
    second.store([delivery("anxin/v1/fall-1/event", '{"type": "cancel"}', clock())])
    clock.tick(600)  # long after the window
    second.store([delivery("anxin/v1/fall-2/event", '{"type": "cancel"}', clock())])
    assert the_alert(database, "fall-1").status == "cancelled"
    late = the_alert(database, "fall-2")
    with database() as session:
        actions = [event.action for event in get_timeline(session, late.id)]
    assert late.status == "new"
    assert actions == ["created", "cancel_after_window"]
