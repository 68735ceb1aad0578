"""Generated DC-09 input for the parser: well-formed frames, the same mutated, and noise.

Shared by the bounded property test (make test) and the 10^5-frame run (tests/bench)."""

from __future__ import annotations

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

_DATA = st.sampled_from(
    ["1101 01 003", "3111 00 002", "1999 01 001", "Nri1/MA01", "Nri1/FA01/ZX02", "NRP", "", "x"]
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A well-formed frame: plain or encrypted, any id, ASCII or binary CRC."""
    token = draw(st.sampled_from(["SIA-DCS", "ADM-CID", "NULL", "ACK", "RSP"]))
    seq = f"{draw(st.integers(0, 9999)):04d}"
    receiver = draw(st.sampled_from(["", "R0", "Rc0ffd", "R579BDF"]))
    prefix = draw(st.sampled_from(["L0", "L1234", ""]))
    stamp = draw(st.sampled_from([format_timestamp(NOW), "", "_99:99:99,13-40-2026"]))
    data = draw(_DATA)
    if draw(st.booleans()):
        sealed = encrypt(decode_key(KEY, KeyEncoding.TEXT), f"#5678|{data}]{stamp}".encode())
        body = f'"*{token}"{seq}{receiver}{prefix}#5678[{sealed}'
    else:
        account = draw(st.sampled_from(["1234", "5678", "AAA", "XTRM189"]))
        body = f'"{token}"{seq}{receiver}{prefix}#{account}[#{account}|{data}]{stamp}'
    return build_frame(body, binary_crc=draw(st.booleans()))


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
