"""The 10^5-frame fuzz run of the DC-09 framing and receiver (`make bench`, or
`.venv/bin/pytest -m bench -s tests/bench/test_dc09_fuzz.py`; DC09_FUZZ_FRAMES=N to change).

The same generator as the bounded hypothesis tests (tests/unit/test_dc09_fuzz.py), drawn from
a seeded random generator: at this count hypothesis's own bookkeeping would cost more than
the parsing. A third each: mutated frames, well-formed frames, noise; read in 1–64-byte pieces.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from tests.unit.dc09_fuzzing import Tally, feed, mutate, random_frame

FRAMES = int(os.environ.get("DC09_FUZZ_FRAMES", "100000"))
SEED = 12349


@pytest.mark.bench
def test_fuzz_a_hundred_thousand_frames() -> None:
    rng = random.Random(SEED)  # noqa: S311 - reproducible test input, not secrets
    tally = Tally()
    crashes = 0
    started = time.perf_counter()
    for number in range(FRAMES):
        kind = number % 3
        original = random_frame(rng) if kind < 2 else b""
        stream = mutate(rng, original) if kind == 0 else original
        if kind == 2:
            stream = rng.randbytes(rng.randrange(400))
        try:
            feed(tally, stream, rng.randint(1, 64), original or None)
        except Exception:  # counted: the report's "0 crashes" is this number
            crashes += 1
    elapsed = time.perf_counter() - started
    print(
        f"\ndc09 fuzz: {tally.inputs} inputs (seed {SEED}), {tally.chunks} chunks, "
        f"replies {dict(tally.replies)}, crashes {crashes}, "
        f"ACKs to a bad frame {tally.acks_to_bad_frames}, "
        f"mutated but still well-formed and ACKed {tally.mutated_but_acked}, {elapsed:.0f} s"
    )
    assert crashes == 0
    assert tally.acks_to_bad_frames == 0
