"""Link supervision and the outage guard, on a virtual clock against a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerting.engine import RulesEngine
from alerting.platform import PULSE_EVERY, beat
from alerting.scheduler import Scheduler
from alerting.store import AlertRow
from devices.catalogue import apply_overrides
from devices.registry import DeviceRow, Sighting, record_sightings

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
# A pendant that reports every 60 s and counts as offline after 3 misses: 180 s of silence.
CATALOGUE = apply_overrides({"sos-pendant": {"heartbeat_s": 60, "offline_after_missed": 3}})
WINDOW = timedelta(seconds=180)


class World:
    def __init__(self, sessions: sessionmaker[Session], devices: int) -> None:
        self.sessions, self.now = sessions, T0
        self.ids = [f"p{i:04d}" for i in range(devices)]
        with sessions.begin() as session:
            session.add_all(DeviceRow(id=i, model="sos-pendant", created_at=T0) for i in self.ids)
        self.scheduler = Scheduler(
            sessions=sessions,
            engine=RulesEngine(catalogue=CATALOGUE),
            catalogue=CATALOGUE,
            clock=lambda: self.now,
        )

    def heard(self, ids: list[str], at: datetime) -> None:
        with self.sessions.begin() as session:
            record_sightings(session, [Sighting(device_id=i, seen_at=at) for i in ids])

    def pulse(self) -> None:
        with self.sessions.begin() as session:
            beat(session, self.now)

    def run_until(self, end: datetime, listening: bool, reporting: list[str]) -> int:
        """Advance in 15 s steps: pulses while listening, sightings of ``reporting``."""
        fired = 0
        while self.now < end:
            self.now += PULSE_EVERY
            if listening:
                self.pulse()
                # Each device reports once a minute, spread over the minute.
                due = [i for n, i in enumerate(reporting) if (n + self.now.second) % 4 == 0]
                self.heard(due, self.now)
            fired += len(self.scheduler.step())
        return fired

    def offline(self) -> list[str]:
        with self.sessions() as session:
            return list(
                session.scalars(select(AlertRow.device_id).where(AlertRow.type == "device_offline"))
            )


def test_a_silent_device_goes_offline_once_and_back_online_resolves_it(
    sessions: sessionmaker[Session],
) -> None:
    world = World(sessions, devices=2)
    world.pulse()
    world.heard(world.ids, T0)
    world.scheduler.step()
    quiet, chatty = world.ids
    assert world.run_until(T0 + timedelta(seconds=165), True, [chatty]) == 0
    assert world.run_until(T0 + timedelta(minutes=10), True, [chatty]) == 1
    assert world.offline() == [quiet]
    # A restart rebuilds from the database and does not fire again.
    world.scheduler = Scheduler(
        sessions=sessions,
        engine=RulesEngine(catalogue=CATALOGUE),
        catalogue=CATALOGUE,
        clock=lambda: world.now,
    )
    assert world.run_until(T0 + timedelta(minutes=15), True, [chatty]) == 0
    assert world.offline() == [quiet]


def test_a_five_minute_outage_of_1000_devices_raises_no_offline_alert(
    sessions: sessionmaker[Session],
) -> None:
    world = World(sessions, devices=1000)
    silent = world.ids[-1]  # truly gone: it must still be found
    reporting = world.ids[:-1]
    world.pulse()
    world.heard(world.ids, T0)
    assert world.run_until(T0 + timedelta(minutes=1), True, world.ids) == 0
    # The platform stops listening for five minutes: no pulses, nothing heard.
    assert world.run_until(T0 + timedelta(minutes=6), False, []) == 0
    # It listens again; devices report as before.
    assert world.run_until(T0 + timedelta(minutes=8), True, reporting) == 0
    assert world.offline() == []
    # The one that never came back is offline once its window, moved by the outage, passes.
    assert world.run_until(T0 + timedelta(minutes=12), True, reporting) == 1
    assert world.offline() == [silent]


def test_a_restart_after_an_outage_does_not_count_the_outage_either(
    sessions: sessionmaker[Session],
) -> None:
    world = World(sessions, devices=50)
    world.pulse()
    world.heard(world.ids, T0)
    world.run_until(T0 + timedelta(minutes=1), True, world.ids)
    # The whole process stops for five minutes; a new one starts with a new scheduler.
    world.now = T0 + timedelta(minutes=6)
    world.scheduler = Scheduler(
        sessions=sessions,
        engine=RulesEngine(catalogue=CATALOGUE),
        catalogue=CATALOGUE,
        clock=lambda: world.now,
    )
    assert world.run_until(T0 + timedelta(minutes=9), True, world.ids) == 0
    assert world.offline() == []


def test_a_failed_pass_does_not_end_the_scheduler(sessions: sessionmaker[Session]) -> None:
    """A database error in one pass is logged; the next pass runs and fires what is due."""
    import asyncio

    from sqlalchemy.exc import OperationalError

    from alerting.feed import AlertFeed

    world = World(sessions, devices=1)
    feed = AlertFeed()
    world.scheduler = Scheduler(
        sessions=sessions,
        engine=RulesEngine(catalogue=CATALOGUE),
        catalogue=CATALOGUE,
        clock=lambda: world.now,
        feed=feed,
    )
    world.pulse()
    world.heard(world.ids, T0)
    assert world.run_until(T0 + timedelta(seconds=165), True, []) == 0
    for _ in range(2):  # past the window, listening all along: the device is due
        world.now += PULSE_EVERY
        world.pulse()
    real_step, passes = world.scheduler.step, []

    def flaky_step() -> list[object]:
        passes.append(world.now)
        if len(passes) == 1:
            raise OperationalError("SELECT 1", {}, Exception("database is locked"))
        return list(real_step())

    world.scheduler.step = flaky_step  # type: ignore[method-assign]

    async def run() -> list[str]:
        stop = asyncio.Event()
        async with feed.listen() as changes:
            task = asyncio.create_task(world.scheduler.run(stop, every_s=0.01))
            change = await asyncio.wait_for(changes.get(), timeout=10)
            stop.set()
            await task
        return [change.device_id]

    assert asyncio.run(run()) == world.ids
    assert len(passes) >= 2


def test_the_scheduler_wakes_for_a_deadline_before_its_next_pass(
    sessions: sessionmaker[Session],
) -> None:
    """Within a second of the deadline, not up to a pass (5 s) later; not early while down."""
    world = World(sessions, devices=2)
    world.pulse()
    quiet, chatty = world.ids
    world.heard([quiet], T0)
    world.heard([chatty], T0 + timedelta(seconds=100))
    world.now = T0 + WINDOW - timedelta(seconds=2)
    world.pulse()
    assert world.scheduler.step() == []
    assert world.scheduler._wait_s(5.0) == 2.0  # the quiet one's deadline
    world.now = T0 + WINDOW - timedelta(seconds=60)
    assert world.scheduler._wait_s(5.0) == 5.0
    world.now = T0 + WINDOW + timedelta(seconds=1)  # past it: soon, never a negative wait
    assert world.scheduler._wait_s(5.0) == 0.05
    # The platform down (no pulse for a while): the next pass comes at its usual time.
    world.now = T0 + timedelta(minutes=5)
    assert world.scheduler.step() == []
    assert world.scheduler._wait_s(5.0) == 5.0
