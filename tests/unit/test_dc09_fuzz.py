"""Hypothesis over the DC-09 framing and receiver: no crash, and never an ACK to a bad frame
(bounded here; tests/bench/test_dc09_fuzz.py runs 10^5)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateways.dc09.frames import parse_frame
from tests.unit.dc09_fuzzing import Tally, feed, frames, mutated


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.integers(1, 64))
def test_well_formed_frames_are_answered_whatever_the_reads(frame: bytes, split: int) -> None:
    tally = Tally()
    feed(tally, frame + b"\x00" + frame, split)
    assert tally.chunks == 2
    assert tally.acks_to_bad_frames == 0
    parse_frame(frame)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.integers(1, 64))
def test_mutated_frames_are_never_acked_unless_still_well_formed(
    pair: tuple[bytes, bytes], split: int
) -> None:
    original, broken = pair
    tally = Tally()
    feed(tally, broken, split, original)
    assert tally.acks_to_bad_frames == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 64))
def test_noise_never_crashes_and_is_never_acked(noise: bytes, split: int) -> None:
    tally = Tally()
    feed(tally, noise, split)
    assert tally.acks_to_bad_frames == 0
    assert tally.replies["ack"] == 0
