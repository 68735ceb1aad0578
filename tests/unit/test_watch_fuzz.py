"""Fuzzing the watch codec with hypothesis: framer, parser, reader and translation never
crash on any input, and what they publish is always a valid contract payload.

``make test`` runs a bounded number of examples; the 10⁵-frame run of the closing note is
``WATCH_FUZZ_EXAMPLES=100000 .venv/bin/pytest tests/unit/test_watch_fuzz.py -q -s``
(``make fuzz-watch``), which prints how many frames were generated and read.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.payloads import EventPayload, HeartbeatPayload, SosPayload, TelemetryPayload
from devices.topics import Uplink
from gateways.watch.frames import FrameError, Framer, RawFrame, Skipped, parse_frame
from gateways.watch.messages import read_message
from gateways.watch.translate import ReplyWhen, translate
from tests.unit.watch_corpus import TRACCAR_DECODER, VENDOR

EXAMPLES = int(os.environ.get("WATCH_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
MODELS = {
    Uplink.HEARTBEAT: HeartbeatPayload,
    Uplink.SOS: SosPayload,
    Uplink.EVENT: EventPayload,
    Uplink.TELEMETRY: TelemetryPayload,
}
TYPES = [
    "LK", "UD", "UD_LTE", "UD_WCDMA", "UD2", "UD3", "AL", "AL_LTE", "ALCUSTOMER1", "WT",
    "TKQ", "TKQ2", "INIT", "CONFIG", "heart", "PULSE", "bphrt", "BPHRT", "BLOOD", "oxygen",
    "btemp2", "TEMP", "TK", "TK2", "JXTK", "img", "CR", "UPLOAD", "MESSAGE", "?", "",
]  # fmt: skip
# Field values as watches write them, and the awkward ones (brackets, escapes, signs …).
VALUES = [
    "", "0", "1", "00", "100", "-1", "A", "V", "N", "S", "E", "W", " 0.0000000", "081.53128",
    "-33.480366", "00010000", "00010001", "00230001", "0000", "0001", "zzzz", "FFFFFFFF",
    "271219", "094744", "999999", "310299", "255", "460", "55C0", "3B882A2", "f4:db:e6:d2:a8:00",
    "[LG_Wall-Mount A/C]e725", "my[wifi", "x]y", "}", "}\x01", "nan", "inf", "1e400", "35.29",
    "12.4", "#!AMR", "\xff\xfe", "好",
]  # fmt: skip
counts: Counter[str] = Counter()


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One generated frame: real header shapes, a type, fields mixed from real and odd
    values; sometimes a real frame mutated (bytes flipped, cut, inserted)."""
    if draw(st.integers(0, 4)) == 0:
        raw = bytearray(draw(st.sampled_from(TRACCAR_DECODER + VENDOR)).encode())
        for _ in range(draw(st.integers(1, 4))):
            if not raw:
                break
            at = draw(st.integers(0, len(raw) - 1))
            action = draw(st.integers(0, 2))
            if action == 0:
                raw[at] = draw(st.integers(0, 255))
            elif action == 1:
                del raw[at : at + draw(st.integers(1, 20))]
            else:
                raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        return bytes(raw)
    vendor = draw(st.sampled_from(["3G", "SG", "CS", "ZJ", "X", "3g4G"]))
    device = draw(st.from_regex(r"[0-9]{6,20}", fullmatch=True))
    index = draw(st.one_of(st.none(), st.from_regex(r"[0-9a-fA-F]{4}", fullmatch=True)))
    kind = draw(st.sampled_from(TYPES))
    fields = draw(st.lists(st.one_of(st.sampled_from(VALUES), st.text(max_size=6)), max_size=40))
    content = ",".join([kind, *fields]).encode("utf-8", "surrogatepass")
    length = draw(st.one_of(st.just(f"{len(content):04X}"), st.sampled_from(["len", "0000"])))
    head = f"[{vendor}*{device}*" + (f"{index}*" if index else "") + f"{length}*"
    return head.encode() + content + b"]"


def check_frame(raw: bytes) -> None:
    counts["frames"] += 1
    try:
        frame = parse_frame(raw)
    except FrameError:
        counts["header_errors"] += 1
        return
    result = translate(frame, read_message(frame))
    counts["translated"] += 1
    for publication in result.publications:
        MODELS[publication.kind].model_validate(dict(publication.payload))
        counts[publication.kind.value] += 1
    if result.reply_when is ReplyWhen.STORED:
        assert result.sos_seq is not None
        assert result.publications[0].kind is Uplink.SOS
        assert result.publications[0].payload["seq"] == result.sos_seq


@FUZZ
@given(
    st.lists(st.one_of(frames(), st.binary(max_size=40)), min_size=1, max_size=6),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
)
def test_any_stream_in_any_pieces_never_crashes_and_loses_no_byte(
    pieces: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(pieces)
    framer = Framer(max_frame=4096)
    out: list[RawFrame | Skipped] = []
    at, i = 0, 0
    while at < len(stream):  # fed in pieces of the drawn sizes, as TCP reads come
        step = cuts[i % len(cuts)]
        out += framer.feed(stream[at : at + step])
        at, i = at + step, i + 1
    accounted = sum(len(o.data) if isinstance(o, RawFrame) else o.size for o in out)
    assert accounted + framer.pending == len(stream)
    for item in out:
        if isinstance(item, RawFrame):
            assert item.data[0] == ord("[")
            assert item.data[-1] == ord("]")
            check_frame(item.data)


@FUZZ
@given(frames())
def test_any_frame_parses_or_is_refused_with_a_reason(raw: bytes) -> None:
    framer = Framer()
    got = [o.data for o in framer.feed(raw) if isinstance(o, RawFrame)]
    for data in got:
        check_frame(data)
    check_frame(raw)  # and the frame as such, even if the framer would cut it otherwise


def test_report() -> None:
    """Printed with -s after the fuzz tests: what was generated and read."""
    print("watch fuzz:", dict(counts), "examples per test:", EXAMPLES)
