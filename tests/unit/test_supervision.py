"""Link supervision's heap: one live entry per device, however often it is heard from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.outages import Outages
from alerting.supervision import LinkSupervisor

T0 = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


def test_a_chatty_device_does_not_grow_the_heap_and_fires_once_when_silent() -> None:
    supervisor = LinkSupervisor()
    now = T0
    for _ in range(2000):  # heard every minute for 33 hours, the scheduler stepping between
        supervisor.watch("d1", now, WINDOW)
        now += timedelta(minutes=1)
        assert supervisor.due(now, Outages()) == []
    # One entry, however often it was heard from (not one per sighting of the last window).
    assert supervisor.queued == 1
    last = now - timedelta(minutes=1)
    assert supervisor.due(last + WINDOW - timedelta(seconds=1), Outages()) == []
    assert supervisor.due(last + WINDOW, Outages()) == ["d1"]
    assert supervisor.due(last + 2 * WINDOW, Outages()) == []  # once per silence
    assert supervisor._heap == []


def test_an_outage_moves_the_deadline_by_its_length() -> None:
    supervisor = LinkSupervisor()
    supervisor.watch("d1", T0, WINDOW)
    supervisor.watch("d1", T0 + timedelta(minutes=1), WINDOW)
    outages = Outages()
    outages.add(T0 + timedelta(minutes=2), T0 + timedelta(minutes=7))
    due = T0 + timedelta(minutes=1) + WINDOW
    assert supervisor.due(due, outages) == []
    assert supervisor.next_due() == due + timedelta(minutes=5)
    assert supervisor.due(due + timedelta(minutes=5) - timedelta(seconds=1), outages) == []
    assert supervisor.due(due + timedelta(minutes=5), outages) == ["d1"]
    assert supervisor._heap == []


def test_a_forgotten_device_is_not_reported() -> None:
    supervisor = LinkSupervisor()
    supervisor.watch("d1", T0, WINDOW)
    supervisor.forget("d1")
    assert supervisor.due(T0 + 2 * WINDOW, Outages()) == []


def test_the_heap_holds_one_entry_per_device_as_the_scheduler_reads_them_every_5_s() -> None:
    """serve's load (issue 17): 2,000 devices, each read again at every 5 s pass, a 30 min
    window. The heap kept every pass's entry for the window: 720,000 of them, ~120 MiB."""
    supervisor = LinkSupervisor()
    window = timedelta(minutes=30)
    devices = [f"d{n}" for n in range(2000)]
    now = T0
    for _ in range(60):  # 5 minutes of passes
        now += timedelta(seconds=5)
        for device in devices:
            supervisor.watch(device, now - timedelta(seconds=1), window)
        assert supervisor.due(now, Outages()) == []
    assert supervisor.queued == len(supervisor) == 2000
    # Silent from now on: each fires once, a window after it was last heard from.
    last = now - timedelta(seconds=1)
    assert supervisor.due(last + window - timedelta(seconds=1), Outages()) == []
    assert sorted(supervisor.due(last + window, Outages())) == sorted(devices)
    assert supervisor.queued == 0


def test_a_shorter_window_brings_the_deadline_forward() -> None:
    supervisor = LinkSupervisor()
    supervisor.watch("d1", T0, WINDOW)
    supervisor.watch("d1", T0 + timedelta(minutes=1), timedelta(minutes=2))
    assert supervisor.next_due() == T0 + timedelta(minutes=3)
    assert supervisor.due(T0 + timedelta(minutes=3), Outages()) == ["d1"]
    assert supervisor.due(T0 + 2 * WINDOW, Outages()) == []  # the stale entry is skipped
    assert supervisor.queued == 0


def test_stale_entries_beyond_the_bound_rebuild_the_heap() -> None:
    supervisor = LinkSupervisor(max_stale=10)
    supervisor.watch("keep", T0, WINDOW)
    for n in range(100):  # forgotten and watched again: each time a stale entry is left
        supervisor.forget("flappy")
        supervisor.watch("flappy", T0 + timedelta(seconds=n), WINDOW)
        assert supervisor.queued <= 2 * len(supervisor) + 10
    assert supervisor.rebuilds > 0
    assert supervisor.due(T0 + 2 * WINDOW, Outages()) == ["keep", "flappy"]
    assert supervisor.queued == 0


def test_next_due_is_the_earliest_deadline_the_sightings_tell_not_a_stale_entry() -> None:
    supervisor = LinkSupervisor()
    supervisor.watch("d1", T0, WINDOW)
    supervisor.watch("d2", T0 + timedelta(minutes=3), WINDOW)
    supervisor.watch("d1", T0 + timedelta(minutes=5), WINDOW)  # its entry stays at T0 + 10 min
    assert supervisor.next_due() == T0 + timedelta(minutes=13)  # d2's, not d1's old one
    supervisor.forget("d2")
    assert supervisor.next_due() == T0 + timedelta(minutes=15)
    assert supervisor.queued == 1  # settled on the way: d1 moved, d2's entry dropped
    assert supervisor.due(T0 + timedelta(minutes=15), Outages()) == ["d1"]
    assert supervisor.next_due() is None


def test_a_deadline_holds_to_the_microsecond() -> None:
    # Times are kept as floats: one microsecond either side of the deadline still tells.
    supervisor = LinkSupervisor()
    heard = T0 + timedelta(days=300, microseconds=999_999)
    supervisor.watch("d1", heard, WINDOW)
    assert supervisor.next_due() == heard + WINDOW
    assert supervisor.due(heard + WINDOW - timedelta(microseconds=1), Outages()) == []
    assert supervisor.due(heard + WINDOW, Outages()) == ["d1"]
