"""The 10^5-frame fuzz run of the DC-09 parser (`make bench`, or
`.venv/bin/pytest -m bench -s tests/bench/test_dc09_fuzz.py`; DC09_FUZZ_EXAMPLES=N to change)."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.dc09_fuzzing import Tally, feed, frames, mutated

EXAMPLES = int(os.environ.get("DC09_FUZZ_EXAMPLES", "100000"))


@pytest.mark.bench
def test_fuzz_a_hundred_thousand_frames() -> None:
    tally = Tally()
    inputs = st.one_of(
        mutated(),
        frames().map(lambda frame: (frame, frame)),
        st.binary(max_size=400).map(lambda noise: (b"", noise)),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs, st.integers(1, 64))
    def run(pair: tuple[bytes, bytes], split: int) -> None:
        original, stream = pair
        feed(tally, stream, split, original or None)

    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(
        f"\ndc09 fuzz: {tally.inputs} inputs, {tally.chunks} chunks, "
        f"replies {dict(tally.replies)}, "
        f"crashes 0, ACKs to a bad frame {tally.acks_to_bad_frames}, mutated but still "
        f"well-formed and ACKed {tally.mutated_but_acked}, {elapsed:.0f} s"
    )
    assert tally.acks_to_bad_frames == 0
