"""Generated DC-09 input for the parser: well-formed frames, the same mutated, and noise.

Shared by the bounded property test (make test) and the 10^5-frame run (tests/bench)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import strategies as st

from gateways.dc09.accounts import parse_accounts
from gateways.dc09.content import format_timestamp
from gateways.dc09.crypto import KeyEncoding, decode_key, encrypt
from gateways.dc09.frames import FrameError, build_frame, parse_frame
from gateways.dc09.framing import FrameReader
from gateways.dc09.receiver import Receiver

NOW = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
KEY = "0123456789ABCDEF"
RECEIVER = Receiver(
    parse_accounts({"accounts": {"5678": {"key": KEY, "key_encoding": "text"}}}), None
)

DATA = ["1101 01 003", "3111 00 002", "1999 01 001", "Nri1/MA01", "Nri1/FA01/ZX02", "NRP", "", "x"]
TOKENS = ["SIA-DCS", "ADM-CID", "NULL", "ACK", "RSP"]
RECEIVERS = ["", "R0", "Rc0ffd", "R579BDF"]
PREFIXES = ["L0", "L1234", ""]
STAMPS = [format_timestamp(NOW), "", "_99:99:99,13-40-2026"]
ACCOUNTS = ["1234", "5678", "AAA", "XTRM189"]
_DATA = st.sampled_from(DATA)


def frame_of(
    token: str, seq: int, receiver: str, prefix: str, stamp: str, data: str,
    sealed: bool, account: str, binary_crc: bool,
) -> bytes:  # fmt: skip
    if sealed:
        text = encrypt(decode_key(KEY, KeyEncoding.TEXT), f"#5678|{data}]{stamp}".encode())
        body = f'"*{token}"{seq:04d}{receiver}{prefix}#5678[{text}'
    else:
        body = f'"{token}"{seq:04d}{receiver}{prefix}#{account}[#{account}|{data}]{stamp}'
    return build_frame(body, binary_crc=binary_crc)


def random_frame(rng: random.Random) -> bytes:
    """What :func:`frames` draws, from a seeded generator (the 10^5 run: no shrinking cost)."""
    return frame_of(
        rng.choice(TOKENS), rng.randrange(10000), rng.choice(RECEIVERS), rng.choice(PREFIXES),
        rng.choice(STAMPS), rng.choice(DATA), rng.random() < 0.5, rng.choice(ACCOUNTS),
        rng.random() < 0.5,
    )  # fmt: skip


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """What :func:`mutated` does: 1–3 bytes flipped, dropped, inserted, or the frame cut."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        where = rng.randrange(max(len(data), 1))
        how = rng.choice(["flip", "drop", "insert", "cut"])
        if how == "flip" and data:
            data[where] ^= 1 << rng.randrange(8)
        elif how == "drop" and data:
            del data[where]
        elif how == "insert":
            data.insert(where, rng.randrange(256))
        elif how == "cut":
            del data[where:]
    return bytes(data)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A well-formed frame: plain or encrypted, any id, ASCII or binary CRC."""
    return frame_of(
        draw(st.sampled_from(TOKENS)), draw(st.integers(0, 9999)),
        draw(st.sampled_from(RECEIVERS)), draw(st.sampled_from(PREFIXES)),
        draw(st.sampled_from(STAMPS)), draw(_DATA), draw(st.booleans()),
        draw(st.sampled_from(ACCOUNTS)), draw(st.booleans()),
    )  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(original, mutated): a byte flipped, dropped, inserted, or the frame cut short."""
    original = draw(frames())
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        how = draw(st.sampled_from(["flip", "drop", "insert", "cut"]))
        if how == "flip" and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif how == "drop" and data:
            del data[where]
        elif how == "insert":
            data.insert(where, draw(st.integers(0, 255)))
        elif how == "cut":
            del data[where:]
    return original, bytes(data)


@dataclass
class Tally:
    inputs: int = 0
    chunks: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    acks_to_bad_frames: int = 0
    mutated_but_acked: int = 0  # a mutation that is itself a well-formed frame (e.g. case)


def feed(tally: Tally, stream: bytes, split: int, original: bytes | None = None) -> None:
    """Through the framing (``split``-byte reads) and the receiver; counts, never raises."""
    tally.inputs += 1
    reader = FrameReader()
    for start in range(0, len(stream), split):
        for chunk in reader.feed(stream[start : start + split]):
            tally.chunks += 1
            if chunk.reason is not None:
                outcome = RECEIVER.reject(chunk.data, chunk.reason, NOW)
            else:
                outcome = RECEIVER.handle(chunk.data, NOW)
            tally.replies[outcome.reply_kind] += 1
            if outcome.reply_kind != "ack":
                continue
            try:
                parse_frame(chunk.data)
            except FrameError:
                tally.acks_to_bad_frames += 1
            if original is not None and chunk.data != original:
                tally.mutated_but_acked += 1
