"""The stream's machinery: its place in the timeline (gaps remembered for late commits, for a
while), and reads shared by connections."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.streaming import (
    MAX_GAPS,
    InvalidPositionError,
    StreamPosition,
    StreamSettings,
    TimelineCursor,
    TimelineWatch,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_missing_ids_are_looked_for_until_they_come() -> None:
    cursor = TimelineCursor(10, gap_grace_s=5, clock=Clock())
    cursor.advance([11, 13, 16])
    assert (cursor.after, cursor.gaps) == (16, [12, 14, 15])
    cursor.advance([14, 17])  # 14 committed late
    assert (cursor.after, cursor.gaps) == (17, [12, 15])


def test_gaps_are_given_up_after_the_grace_period() -> None:
    clock = Clock()
    cursor = TimelineCursor(0, gap_grace_s=5, clock=clock)
    cursor.advance([2])
    clock.now = 4.0
    cursor.advance([5])
    assert cursor.gaps == [1, 3, 4]
    clock.now = 5.5  # id 1 was rolled back: no longer waited for
    cursor.advance([])
    assert cursor.gaps == [3, 4]


def test_a_huge_jump_remembers_only_the_newest_gaps() -> None:
    cursor = TimelineCursor(0, gap_grace_s=5, clock=Clock())
    cursor.advance([50_000])
    assert len(cursor.gaps) == MAX_GAPS
    assert cursor.gaps[-1] == 49_999
    assert cursor.after == 50_000


def test_ids_at_or_below_the_cursor_that_are_no_gaps_change_nothing() -> None:
    cursor = TimelineCursor(10, gap_grace_s=5, clock=Clock())
    cursor.advance([9, 10])
    assert (cursor.after, cursor.gaps) == (10, [])


def test_connections_asking_the_same_share_one_read() -> None:
    async def scenario() -> tuple[list[str], list[int]]:
        watch = TimelineWatch(StreamSettings())
        calls: list[int] = []

        def read() -> str:
            calls.append(1)
            return "rows"

        together = await asyncio.gather(*(watch.shared_read((5, ()), read) for _ in range(50)))
        await watch.shared_read((7, ()), read)  # another position: its own read
        watch._wake()  # something changed: the next ask reads anew
        await watch.shared_read((5, ()), read)
        return list(together), calls

    results, calls = asyncio.run(scenario())
    assert results == ["rows"] * 50
    assert len(calls) == 3


def test_a_failed_read_is_not_shared_with_later_callers() -> None:
    async def scenario() -> int:
        watch = TimelineWatch(StreamSettings())
        attempts: list[int] = []

        def read() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise OSError("database away")
            return "rows"

        with pytest.raises(OSError, match="database away"):
            await watch.shared_read("k", read)
        assert await watch.shared_read("k", read) == "rows"
        return len(attempts)

    assert asyncio.run(scenario()) == 2


# The SSE id: a position a client can resume at on any replica.


@pytest.mark.parametrize(
    ("position", "token"),
    [
        (StreamPosition(after=12), "12"),
        (StreamPosition(after=12, gaps=(11,)), "12~11"),
        (StreamPosition(after=40, gaps=(31, 32, 33, 38)), "40~31-33,38"),
        (StreamPosition(after=0), "0"),
    ],
)
def test_a_position_is_a_short_token_and_back(position: StreamPosition, token: str) -> None:
    assert position.token() == token
    assert StreamPosition.parse(token) == position


@given(
    after=st.integers(min_value=0, max_value=10**12),
    below=st.sets(st.integers(min_value=1, max_value=MAX_GAPS), max_size=60),
)
def test_any_position_survives_its_token(after: int, below: set[int]) -> None:
    position = StreamPosition(
        after=after, gaps=tuple(sorted(after - b for b in below if b <= after))
    )
    assert StreamPosition.parse(position.token()) == position


@pytest.mark.parametrize(
    "token", ["", "abc", "-1", "12~", "12~13", "12~12", "5000~1", "12~3-x", "1" * 19, "12~9-3"]
)
def test_what_is_not_a_position_is_refused(token: str) -> None:
    with pytest.raises(InvalidPositionError):
        StreamPosition.parse(token)


def test_a_resumed_cursor_looks_for_its_gaps_again_and_reports_them() -> None:
    cursor = TimelineCursor(12, gaps=[11, 9], gap_grace_s=5, clock=Clock())
    assert cursor.position.token() == "12~9,11"
    cursor.advance([11])
    assert cursor.position.token() == "12~9"
    cursor.advance([13])
    assert cursor.position.token() == "13~9"
