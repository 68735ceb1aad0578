"""The DC-09 codec on real public frames: CRC, length, header, encryption, blocks, replies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from gateways.dc09.blocks import BlockError, parse_cid, parse_sia
from gateways.dc09.content import parse_content
from gateways.dc09.crc import crc16_arc
from gateways.dc09.crypto import (
    BadKeyError,
    KeyEncoding,
    decode_key,
    decrypt,
    encrypt,
    pad_size,
    random_pad,
)
from gateways.dc09.frames import FrameError, Token, build_frame, parse_frame
from gateways.dc09.replies import ack, duh, nak
from tests.unit.dc09_vectors import (
    BODIES,
    FRAMES,
    GOLDEN_ACK,
    GOLDEN_ACK_REQUEST,
    GOLDEN_NAK,
)


def _key(vector: dict[str, object]) -> bytes | None:
    if "key" not in vector:
        return None
    return decode_key(str(vector["key"]), KeyEncoding(str(vector["key_encoding"])))


def _codes(data: str, token: Token) -> list[str]:
    if token is Token.ADM_CID:
        event = parse_cid(data)
        return [event.cid or ""]
    return [event.code for event in parse_sia(data)]


def test_crc16_arc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_arc(b"") == 0


def test_the_vectors_are_counted_by_kind() -> None:
    counts = Counter(f"{v['source']}:{v['kind']}" for v in FRAMES)
    counts.update(f"{v['source']}:{v['kind']} (body)" for v in BODIES)
    print("real frames by source and kind:", dict(sorted(counts.items())))
    assert len(FRAMES) + len(BODIES) >= 50


@pytest.mark.parametrize("vector", FRAMES, ids=lambda v: f"{v['source']}-{v['frame'][1:9]}")
def test_real_frames_parse(vector: dict[str, object]) -> None:
    frame = parse_frame(str(vector["frame"]).encode("latin-1"))
    expect = dict(vector["expect"])  # type: ignore[call-overload]
    assert frame.token.value == expect.pop("token")
    assert frame.encrypted is expect.pop("encrypted", False)
    for field in ("seq", "receiver", "prefix", "account"):
        if field in expect:
            assert getattr(frame, field) == expect.pop(field), field
    if frame.encrypted:
        key = _key(vector)
        if key is None:
            return
        plain = decrypt(key, frame.rest)
        assert plain is not None
        if "plain" in expect:
            assert plain.decode("latin-1") == expect.pop("plain")
        rest = plain
    else:
        rest = frame.rest
    if frame.token not in (Token.SIA_DCS, Token.ADM_CID, Token.NULL):
        return
    content = parse_content(rest)
    if "ts" in expect:
        stamp = expect.pop("ts")
        assert (content.timestamp.isoformat() if content.timestamp else None) == stamp
    if "extended" in expect:
        assert [list(item) for item in content.extended] == expect.pop("extended")
    if "codes" in expect:
        codes = expect.pop("codes")
        if codes is None:
            with pytest.raises(BlockError):
                _codes(content.data, frame.token)
        else:
            assert _codes(content.data, frame.token) == codes


@pytest.mark.parametrize("vector", BODIES, ids=lambda v: str(v["body"])[:24])
def test_pysiaalarm_bodies_parse_once_their_length_is_right(vector: dict[str, object]) -> None:
    body = str(vector["body"])
    frame = parse_frame(build_frame(body))
    assert _codes(parse_content(frame.rest).data, frame.token) == vector["codes"]


def test_a_lowercase_crc_and_a_non_hex_length() -> None:
    assert parse_frame(b'\n7ea80059"SIA-DCS"0000Rc0ffdL1234#080027E62A64[#080027E62A64|NHB0003]'
                       b"[E115000]_09:00:13,06-23-2015\r").receiver == "Rc0ffd"  # fmt: skip
    with pytest.raises(FrameError) as error:
        parse_frame(b'\n01fc003g"ACK"0000Rc0ffdL1234#080027E62A64[]_12:10:40,06-22-2015\r')
    assert error.value.kind == "format"


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        (lambda raw: raw[:12] + b"X" + raw[13:], "crc"),  # one byte of the body changed
        (lambda raw: raw[:5] + b"0039" + raw[9:], "length"),
        (lambda raw: b"\n0000" + raw[5:], "crc"),
        (lambda raw: raw[:-1], "format"),  # no CR
    ],
)
def test_bad_frames_fail_their_check(mutate: object, kind: str) -> None:
    raw = GOLDEN_ACK_REQUEST
    with pytest.raises(FrameError) as error:
        parse_frame(mutate(raw))  # type: ignore[operator]
    assert error.value.kind == kind


def test_binary_crc_frames() -> None:
    body = b'"ADM-CID"0001L0#1002[#1002|1602 00 001]'
    raw = build_frame(body, binary_crc=True)
    assert raw[1:3] == crc16_arc(body).to_bytes(2, "big")
    frame = parse_frame(raw)
    assert frame.binary_crc
    assert frame.account == "1002"
    reply = ack(frame, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert reply[3:7] == f"{len(reply) - 8:04X}".encode()
    assert parse_frame(reply).binary_crc


@pytest.mark.parametrize("size", [16, 24, 32])
@pytest.mark.parametrize("encoding", [KeyEncoding.TEXT, KeyEncoding.HEX])
def test_encryption_round_trips(size: int, encoding: KeyEncoding) -> None:
    text = "0123456789ABCDEFGHIJKLMNOPQRSTUV"[:size]
    key = decode_key(text if encoding is KeyEncoding.TEXT else text.encode().hex(), encoding)
    assert len(key) == size
    for content in (b"]_10:00:00,12-02-2026", b"#1234|Nri1/MA01]_10:00:00,12-02-2026", b"x" * 31):
        sealed = encrypt(key, content)
        assert len(sealed) % 32 == 0
        assert decrypt(key, sealed.encode()) == content


@pytest.mark.parametrize("rest", range(40))
def test_the_pad_rule(rest: int) -> None:
    size = pad_size(rest)
    assert 1 <= size <= 16
    assert (size + 1 + rest) % 16 == 0
    if (rest + 1) % 16 == 0:
        assert size == 16
    pad = random_pad(size)
    assert len(pad) == size
    assert not set(pad) & set(b"|[]")


def test_bad_keys_are_refused() -> None:
    for key, encoding in [
        ("short", "text"),
        ("AB" * 15, "hex"),
        ("ZZ" * 16, "hex"),
        ("é" * 16, "text"),
    ]:
        with pytest.raises(BadKeyError):
            decode_key(key, KeyEncoding(encoding))


def test_golden_nak() -> None:
    assert nak(datetime(2015, 4, 14, 16, 9, 9, tzinfo=UTC)) == GOLDEN_NAK


def test_golden_ack() -> None:
    frame = parse_frame(GOLDEN_ACK_REQUEST)
    assert ack(frame, datetime(2015, 6, 22, 12, 10, 40, tzinfo=UTC)) == GOLDEN_ACK


def test_encrypted_ack_decrypts_to_pad_bar_and_time() -> None:
    vector = next(v for v in FRAMES if str(v["frame"]).startswith("\nCAC1"))
    key = _key(vector)
    assert key is not None
    frame = parse_frame(str(vector["frame"]).encode())
    reply = ack(frame, datetime(2015, 4, 14, 16, 8, 12, tzinfo=UTC), key, pad=lambda n: b"p" * n)
    parsed = parse_frame(reply)
    assert parsed.token is Token.ACK
    assert parsed.encrypted
    assert parsed.header == frame.header
    sealed = reply[reply.index(b"[") + 1 : -1]
    raw = bytes.fromhex(sealed.decode())
    assert len(raw) == 32
    assert decrypt(key, sealed) == b"]_16:08:12,04-14-2015"


def test_every_reply_carries_its_crc_and_length() -> None:
    now = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
    for vector in FRAMES:
        frame = parse_frame(str(vector["frame"]).encode("latin-1"))
        key = _key(vector) or b"K" * 16
        for reply in (ack(frame, now, key), duh(frame), nak(now)):
            body = reply[9:-1]
            assert int(reply[1:5], 16) == crc16_arc(body)
            assert int(reply[5:9], 16) == len(body)
            again = parse_frame(reply)
            if again.token is not Token.NAK:
                assert again.header == frame.header  # seq, R, L, account echoed as received


def test_duh_echoes_the_header() -> None:
    frame = parse_frame(b'\n1f200023"DUH"0045Rc0ffdL1234#080027E62A64[]\r')
    assert duh(frame) == b'\n1F200023"DUH"0045Rc0ffdL1234#080027E62A64[]\r'


def test_cross_check_with_pysiaalarm() -> None:
    """Frames we encrypt with a text key decrypt in pysiaalarm (Home Assistant's library), and
    its NAK parses here."""
    from pysiaalarm import SIAAccount, SIAEvent

    key_text = "AAAAAAAAAAAAAAAA"
    key = decode_key(key_text, KeyEncoding.TEXT)
    now = datetime.now(UTC)
    stamp = now.strftime("_%H:%M:%S,%m-%d-%Y")
    sealed = encrypt(key, f"#1111|Nri1/MA01]{stamp}".encode())
    raw = build_frame(f'"*SIA-DCS"0042L0#1111[{sealed}')
    event = SIAEvent.from_line(raw.decode().strip("\n\r"), {"1111": SIAAccount("1111", key_text)})
    assert event.code == "MA"
    assert event.ri == "1"
    assert event.valid_message
    accounts = {"1111": SIAAccount("1111", None)}
    cid = build_frame(f'"ADM-CID"0007R0L0#1111[#1111|1101 01 003]{stamp}')
    pysia = SIAEvent.from_line(cid.decode().strip("\n\r"), accounts)
    assert pysia.code == "QA"  # its CID → SIA table; 101 is there
    reply = parse_frame(pysia.create_response())
    assert reply.token is Token.ACK
    assert reply.header == parse_frame(cid).header
    # Without an R in the request, pysiaalarm's ACK says "None" where R would be: not a frame.
    bare = build_frame(f'"ADM-CID"0007L0#1111[#1111|1101 01 003]{stamp}')
    answer = SIAEvent.from_line(bare.decode().strip("\n\r"), accounts).create_response()
    assert b'"ACK"0007NoneL0' in answer
    with pytest.raises(FrameError):
        parse_frame(answer)
    # Its CID table has gaps: 102, 154, 384, 641 come out as YN ("invalid report").
    for code in ("102", "154", "384", "641"):
        line = build_frame(f'"ADM-CID"0007R0L0#1111[#1111|1{code} 01 003]{stamp}')
        assert SIAEvent.from_line(line.decode().strip("\n\r"), accounts).code == "YN"


def test_golden_encrypted_ack_of_the_swissdotnet_library() -> None:
    """Its `*ACK` decrypts to 10 pad bytes, `|`, `]_16:08:12,04-14-2015`; with those pad bytes
    our `*ACK` to the same request is the same frame, byte for byte."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    golden = (
        b'\nE34C0062"*ACK"0001R5678L1234#080027E62A64'
        b"[14F088FF5DCB19D1908069507EAB97C7CDB20F1C6EFA550BB59864D54B2DFA1C\r"
    )
    key = decode_key("ABCDABCDABCDABCDABCDABCDABCDABCD", KeyEncoding.HEX)
    sealed = bytes.fromhex(golden[golden.index(b"[") + 1 : -1].decode())
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    plain = decryptor.update(sealed) + decryptor.finalize()
    assert plain[10:] == b"|]_16:08:12,04-14-2015"
    request = build_frame(
        '"*NULL"0001R5678L1234#080027E62A64[' + encrypt(key, b"]_16:08:12,04-14-2015")
    )
    now = datetime(2015, 4, 14, 16, 8, 12, tzinfo=UTC)
    assert ack(parse_frame(request), now, key, pad=lambda n: plain[:n]) == golden
