from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.decisions import DeadlineRule, SetDeadline
from ingest.registry_cache import DeadlineThrottle

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def deadline(rule: DeadlineRule, after_s: float, armed: bool = True) -> SetDeadline:
    at = T0 + timedelta(seconds=after_s)
    return SetDeadline(
        rule=rule,
        subject="7",
        elder_id=7,
        device_id="m1",
        basis_at=at,
        due_at=at + timedelta(hours=12) if armed else None,
    )


def test_a_busy_motion_sensor_moves_its_deadline_once_a_minute() -> None:
    throttle = DeadlineThrottle()
    first = deadline(DeadlineRule.INACTIVITY, 0)
    assert throttle.worth_writing([first]) == [first]
    throttle.written([first])
    soon = deadline(DeadlineRule.INACTIVITY, 30)
    assert throttle.worth_writing([soon]) == []
    later = deadline(DeadlineRule.INACTIVITY, 60)
    assert throttle.worth_writing([later]) == [later]


def test_check_ins_tests_and_bed_events_are_always_written() -> None:
    throttle = DeadlineThrottle()
    for rule in (DeadlineRule.CHECKIN, DeadlineRule.TEST, DeadlineRule.BED):
        first, again = deadline(rule, 0), deadline(rule, 1, armed=rule is not DeadlineRule.BED)
        throttle.written([first])
        assert throttle.worth_writing([again]) == [again]


def test_nothing_is_remembered_before_it_is_committed() -> None:
    throttle = DeadlineThrottle()
    first = deadline(DeadlineRule.INACTIVITY, 0)
    throttle.worth_writing([first])  # the batch failed: never written
    soon = deadline(DeadlineRule.INACTIVITY, 10)
    assert throttle.worth_writing([soon]) == [soon]
