"""The login limiter, pure, on a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.login_limit import LoginLimiter, LoginPolicy

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_five_failures_for_a_user_hold_the_sixth_try_until_the_first_leaves_the_window() -> None:
    limiter = LoginLimiter()
    for minute in range(5):
        assert limiter.retry_after("wang", "10.0.0.1", T0 + timedelta(minutes=minute)) is None
        limiter.failed("wang", "10.0.0.1", T0 + timedelta(minutes=minute))
    # From another address too: the account is what is guessed at.
    assert limiter.retry_after("Wang", "10.0.0.2", T0 + timedelta(minutes=4)) == 60
    assert limiter.retry_after("wang", "10.0.0.2", T0 + timedelta(minutes=4, seconds=59)) == 1
    assert limiter.retry_after("wang", "10.0.0.2", T0 + timedelta(minutes=5)) is None
    # Another user from the first address is not held (5 failures < 20 from it).
    assert limiter.retry_after("li", "10.0.0.1", T0 + timedelta(minutes=4)) is None


def test_many_users_tried_from_one_address_hold_that_address() -> None:
    limiter = LoginLimiter(LoginPolicy(max_per_client=3))
    for number in range(3):
        limiter.failed(f"user{number}", "10.0.0.9", T0)
    assert limiter.retry_after("somebody", "10.0.0.9", T0) == 300
    assert limiter.retry_after("somebody", "10.0.0.8", T0) is None


def test_a_success_clears_the_users_failures_and_memory_is_bounded() -> None:
    limiter = LoginLimiter(LoginPolicy(max_keys=10))
    for _ in range(4):
        limiter.failed("wang", "10.0.0.1", T0)
    limiter.succeeded("wang")
    limiter.failed("wang", "10.0.0.1", T0)
    assert limiter.retry_after("wang", "10.0.0.3", T0) is None
    for number in range(100):
        limiter.failed(f"u{number}", f"10.1.0.{number}", T0)
    assert len(limiter._failures) <= 10
