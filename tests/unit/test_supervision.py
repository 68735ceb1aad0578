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
    # Only the sightings of the last window are still queued (the older ones surfaced).
    assert len(supervisor._heap) <= WINDOW // timedelta(minutes=1) + 1
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
