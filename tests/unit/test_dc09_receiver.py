"""The receiver's decisions: which reply, which contract messages, and the accounts file."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.topics import Uplink
from gateways.dc09.accounts import AccountsError, parse_accounts
from gateways.dc09.content import format_timestamp
from gateways.dc09.crypto import KeyEncoding, decode_key, decrypt, encrypt
from gateways.dc09.frames import Token, build_frame, parse_frame
from gateways.dc09.framing import Chunk, FrameReader
from gateways.dc09.receiver import Receiver
from gateways.dc09.window import TimestampWindow, parse_listen, parse_window
from tests.unit.dc09_vectors import FRAMES

NOW = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
STAMP = format_timestamp(NOW)
TEXT_KEY = "0123456789ABCDEF"
HEX_KEY = "ABCDABCDABCDABCDABCDABCDABCDABCD"

ACCOUNTS = parse_accounts(
    {
        "accounts": {
            "1234": {},
            "5678": {"key": TEXT_KEY, "key_encoding": "text", "device_id": "hub-5678"},
            "080027E62A64": {"key": HEX_KEY, "key_encoding": "hex"},
            "7777": {"code_table": "climax"},
            "8888": {"codes": {"102": "fall", "ZX": "smoke", "ZR": "smoke:restore"}},
        }
    }
)


def receiver(window: TimestampWindow | None = TimestampWindow()) -> Receiver:  # noqa: B008
    return Receiver(ACCOUNTS, window, pad=lambda n: b"p" * n)


def sia(data: str, account: str = "1234", seq: str = "0001", stamp: str = STAMP) -> bytes:
    return build_frame(f'"SIA-DCS"{seq}R1L0#{account}[#{account}|{data}]{stamp}')


def cid(block: str, account: str = "1234", seq: str = "0002", stamp: str = STAMP) -> bytes:
    return build_frame(f'"ADM-CID"{seq}L0#{account}[#{account}|{block}]{stamp}')


def encrypted(token: str, account: str, key: bytes, data: str, stamp: str = STAMP) -> bytes:
    sealed = encrypt(key, f"{data}]{stamp}".encode())
    return build_frame(f'"*{token}"0042L0#{account}[{sealed}')


def payload(message: object) -> dict[str, object]:
    return json.loads(message.payload)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(
    ("block", "kind", "expect"),
    [
        ("1101 01 003", Uplink.SOS, {"trigger": "button", "zone": "003", "cid": "1101"}),
        ("1100 01 001", Uplink.SOS, {"cid": "1100"}),
        ("1120 00 000", Uplink.SOS, {"cid": "1120"}),
        ("1111 01 004", Uplink.EVENT, {"type": "smoke", "state": "alarm", "zone": "004"}),
        ("3111 01 004", Uplink.EVENT, {"type": "smoke", "state": "restore"}),
        ("1110 01 004", Uplink.EVENT, {"type": "smoke"}),
        ("1114 01 004", Uplink.EVENT, {"type": "heat"}),
        ("1151 01 004", Uplink.EVENT, {"type": "gas"}),
        ("1162 01 004", Uplink.EVENT, {"type": "co"}),
        ("1154 01 004", Uplink.EVENT, {"type": "water_leak"}),
        ("1302 00 000", Uplink.EVENT, {"type": "low_battery"}),
        ("1384 00 012", Uplink.EVENT, {"type": "low_battery"}),
        ("1301 00 000", Uplink.EVENT, {"type": "power_loss", "state": "alarm"}),
        ("3301 00 000", Uplink.EVENT, {"type": "power_loss", "state": "restore"}),
        ("1383 00 007", Uplink.EVENT, {"type": "tamper"}),
        ("1602 00 000", Uplink.EVENT, {"type": "test"}),
        ("6101 01 003", Uplink.SOS, {"cid": "1101"}),  # 6: still present, taken as new
        ("3101 01 003", Uplink.HEARTBEAT, {}),  # an SOS restore: a sign of life only
    ],
)
def test_contact_id_mapping(block: str, kind: Uplink, expect: dict[str, object]) -> None:
    outcome = receiver().handle(cid(block), NOW)
    assert outcome.reply_kind == "ack"
    (message,) = outcome.messages
    assert message.kind is kind
    assert message.device_id == "1234"
    body = payload(message)
    assert {key: body[key] for key in expect} == expect


@pytest.mark.parametrize(
    ("data", "kind", "expect"),
    [
        ("Nri1/MA01", Uplink.SOS, {"zone": "01"}),
        ("Nri1/QA01", Uplink.SOS, {}),
        ("Nri1/PA501", Uplink.SOS, {"zone": "501"}),
        ("Nri1/FA02", Uplink.EVENT, {"type": "smoke", "state": "alarm"}),
        ("Nri1/FH02", Uplink.EVENT, {"type": "smoke", "state": "restore"}),
        ("Nri1/KA02", Uplink.EVENT, {"type": "heat"}),
        ("Nri1/GA02", Uplink.EVENT, {"type": "gas"}),
        ("Nri1/WA000", Uplink.EVENT, {"type": "water_leak", "zone": "000"}),
        ("Nri1/YT", Uplink.EVENT, {"type": "low_battery"}),
        ("Nri1/AT", Uplink.EVENT, {"type": "power_loss", "state": "alarm"}),
        ("Nri1/AR", Uplink.EVENT, {"type": "power_loss", "state": "restore"}),
        ("Nri1/TA05", Uplink.EVENT, {"type": "tamper"}),
        ("NRP", Uplink.EVENT, {"type": "test"}),
        ("Nri0/RX0", Uplink.EVENT, {"type": "test"}),
        ("Nri1/MH01", Uplink.HEARTBEAT, {}),
    ],
)
def test_sia_mapping(data: str, kind: Uplink, expect: dict[str, object]) -> None:
    outcome = receiver().handle(sia(data), NOW)
    assert outcome.reply_kind == "ack"
    (message,) = outcome.messages
    assert message.kind is kind
    body = payload(message)
    assert {key: body[key] for key in expect} == expect
    if kind is not Uplink.HEARTBEAT:
        assert body["ts"] == "2026-12-02T08:00:00Z"
        assert body["dc09"]["account"] == "1234"  # type: ignore[index]


def test_ack_echoes_the_header_and_null_is_a_sign_of_life() -> None:
    frame = build_frame(f'"NULL"0000Rc0ffdL1234#1234[]{STAMP}')
    outcome = receiver().handle(frame, NOW)
    assert outcome.reply == build_frame(f'"ACK"0000Rc0ffdL1234#1234[]{STAMP}')
    (beat,) = outcome.messages
    assert (beat.kind, beat.payload) == (Uplink.HEARTBEAT, b"{}")


def test_an_sos_has_a_stable_seq_for_its_resends() -> None:
    first = receiver().handle(cid("1101 01 003"), NOW).messages[0]
    again = receiver().handle(cid("1101 01 003"), NOW + timedelta(seconds=5)).messages[0]
    other = receiver().handle(cid("1101 01 003", seq="0003"), NOW).messages[0]
    assert first.sos_seq is not None
    assert first.sos_seq == again.sos_seq == payload(first)["seq"]
    assert other.sos_seq != first.sos_seq
    assert 0 <= first.sos_seq < 2**63


def test_unknown_codes_get_duh_and_a_dead_letter() -> None:
    outcome = receiver().handle(sia("Nri1/ZX01"), NOW)
    assert outcome.reply_kind == "duh"
    assert outcome.reply == build_frame('"DUH"0001R1L0#1234[]')
    (letter,) = outcome.messages
    assert letter.dead_letter
    assert letter.kind is Uplink.EVENT
    body = payload(letter)
    assert body["dead_letter"] == "dc09: unknown SIA code ZX (table standard)"
    assert body["dc09"]["data"] == "#1234|Nri1/ZX01"  # type: ignore[index]
    cid_outcome = receiver().handle(cid("1102 01 003"), NOW)  # standard 102: fail to report
    assert cid_outcome.reply_kind == "duh"
    assert "unknown Contact ID code 1102" in payload(cid_outcome.messages[0])["dead_letter"]  # type: ignore[operator]


def test_a_block_with_known_and_unknown_codes_publishes_both_and_duhs() -> None:
    outcome = receiver().handle(sia("Nri1/FA01/ZX02"), NOW)
    assert outcome.reply_kind == "duh"
    assert [m.dead_letter for m in outcome.messages] == [False, True]


def test_an_unreadable_block_gets_duh_and_a_dead_letter() -> None:
    outcome = receiver().handle(cid("9999 01"), NOW)
    assert outcome.reply_kind == "duh"
    assert outcome.messages[0].dead_letter


def test_vendor_tables_and_overrides() -> None:
    fall = receiver().handle(cid("1102 01 003", account="7777"), NOW)
    assert payload(fall.messages[0])["type"] == "fall"
    inactivity = receiver().handle(cid("1641 01 000", account="7777"), NOW)
    assert payload(inactivity.messages[0])["type"] == "service_request"
    mine = receiver().handle(sia("Nri1/ZR3", account="8888"), NOW)
    assert payload(mine.messages[0]) | {"seq": 0} == payload(mine.messages[0]) | {
        "type": "smoke", "state": "restore", "seq": 0,
    }  # fmt: skip
    assert (
        payload(receiver().handle(cid("1102 01 003", account="8888"), NOW).messages[0])["type"]
        == "fall"
    )


@pytest.mark.parametrize(
    ("offset_s", "reply"),
    [(-41, "nak"), (-39, "ack"), (19, "ack"), (21, "nak"), (-3600, "nak")],
)
def test_the_timestamp_window(offset_s: int, reply: str) -> None:
    stamp = format_timestamp(NOW + timedelta(seconds=offset_s))
    outcome = receiver().handle(sia("Nri1/RP0", stamp=stamp), NOW)
    assert outcome.reply_kind == reply
    if reply == "nak":
        assert outcome.problem == "window"
        assert outcome.messages == ()
        assert outcome.reply == build_frame(f'"NAK"0000R0L0A0[]{STAMP}')


def test_the_window_off_accepts_any_time() -> None:
    stamp = format_timestamp(NOW - timedelta(days=3000))
    assert receiver(None).handle(sia("Nri1/RP0", stamp=stamp), NOW).reply_kind == "ack"


def test_window_and_listen_settings() -> None:
    assert parse_window("40,20") == TimestampWindow(past_s=40, future_s=20)
    assert parse_window("OFF") is None
    for bad in ("40", "a,b", "-1,20", "40,20,1"):
        with pytest.raises(ValueError, match="PAST,FUTURE"):
            parse_window(bad)
    assert parse_listen("0.0.0.0:9009") == ("0.0.0.0", 9009)  # noqa: S104
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match="host:port"):
        parse_listen("9009")


def test_encrypted_frames_and_the_encrypted_ack() -> None:
    key = decode_key(TEXT_KEY, KeyEncoding.TEXT)
    outcome = receiver().handle(encrypted("ADM-CID", "5678", key, "#5678|1101 01 003"), NOW)
    assert outcome.reply_kind == "ack"
    assert outcome.messages[0].device_id == "hub-5678"
    assert outcome.messages[0].kind is Uplink.SOS
    reply = parse_frame(outcome.reply)
    assert (reply.token, reply.encrypted, reply.header) == (Token.ACK, True, "0042L0#5678")
    assert decrypt(key, reply.rest) == f"]{STAMP}".encode()
    null = receiver().handle(encrypted("NULL", "5678", key, ""), NOW)
    assert (null.reply_kind, null.messages[0].kind) == ("ack", Uplink.HEARTBEAT)


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        # encrypted with the wrong key
        (encrypted("ADM-CID", "5678", b"X" * 16, "#5678|1101 01 003"), "decrypt"),
        # plain from an account that has a key
        (cid("1101 01 003", account="5678"), "key"),
        # encrypted from an account without one
        (encrypted("ADM-CID", "1234", b"X" * 16, "#1234|1101 01 003"), "key"),
        # an encrypted region that is not whole blocks
        (build_frame('"*NULL"0000L0#5678[ABCD'), "decrypt"),
        # an account that is no device id and not listed
        (build_frame('"NULL"0000L0#[]'), "format"),
    ],
)
def test_naks(frame: bytes, problem: str) -> None:
    outcome = receiver().handle(frame, NOW)
    assert (outcome.reply_kind, outcome.problem) == ("nak", problem)
    assert outcome.messages == ()
    assert outcome.reply == build_frame(f'"NAK"0000R0L0A0[]{STAMP}')


def test_unlisted_accounts_can_be_refused() -> None:
    closed = Receiver(parse_accounts({"unlisted": "refuse"}), None)
    assert closed.handle(cid("1101 01 003", account="4321"), NOW).problem == "account"
    assert receiver().handle(cid("1101 01 003", account="4321"), NOW).reply_kind == "ack"


def test_reply_ids_get_duh() -> None:
    outcome = receiver().handle(b'\nA62A0012"ACK"0001L0#7099[]\r', NOW)
    assert outcome.reply_kind == "duh"


def test_the_public_encrypted_vectors_decrypt_with_their_hex_key() -> None:
    window_off = receiver(None)
    for vector in FRAMES:
        if vector.get("key") == HEX_KEY and '"*SIA-DCS"' in str(vector["frame"]):
            outcome = window_off.handle(str(vector["frame"]).encode(), NOW)
            assert outcome.reply_kind == "duh"  # HB is no code of ours: kept as a dead letter
            assert outcome.messages[0].dead_letter
            reply = parse_frame(outcome.reply)
            assert reply.token is Token.DUH


def test_bad_accounts_files_are_refused_naming_the_field() -> None:
    cases = [
        ({"accounts": {"1": {"key": "abc", "key_encoding": "text"}}}, "16, 24 or 32"),
        ({"accounts": {"1": {"key": "0123456789ABCDEF"}}}, "key_encoding"),
        ({"accounts": {"1": {"code_table": "nope"}}}, "code_table"),
        ({"accounts": {"1": {"codes": {"1023": "fall"}}}}, "3 digits"),
        ({"accounts": {"1": {"codes": {"102": "falling"}}}}, "falling"),
        ({"accounts": {"1": {"colour": "red"}}}, "colour"),
        ({"accounts": {"1!": {}}}, "accounts"),
        ({"code_tables": {"x": {"based_on": "nope"}}}, "based_on"),
    ]
    for raw, words in cases:
        with pytest.raises(AccountsError, match=words) as error:
            parse_accounts(raw)
        assert "0123456789ABCDEF" not in str(error.value)


def test_framing_split_and_merged_reads() -> None:
    one, two = sia("Nri1/FA01"), cid("1101 01 003")
    stream = one + b"\x00\x00" + two + b"\x00"
    for size in (1, 2, 3, 7, 64, len(stream)):
        reader = FrameReader()
        chunks: list[Chunk] = []
        for start in range(0, len(stream), size):
            chunks += reader.feed(stream[start : start + size])
        assert [chunk.data for chunk in chunks] == [one, two], size
        assert all(chunk.reason is None for chunk in chunks)
        assert reader.dropped == 3


def test_framing_binary_crc_with_cr_and_lf_in_it() -> None:
    frames = []
    for seq in range(3000):  # some of these CRCs hold a 0x0A or 0x0D byte
        frames.append(build_frame(f'"NULL"{seq % 10000:04d}L0#1234[]', binary_crc=True))
    awkward = [f for f in frames if {f[1], f[2]} & {0x0A, 0x0D}]
    assert awkward
    reader = FrameReader()
    chunks: list[Chunk] = []
    stream = b"".join(awkward)
    for start in range(0, len(stream), 5):
        chunks += reader.feed(stream[start : start + 5])
    assert [chunk.data for chunk in chunks] == awkward


def test_framing_resynchronises_after_garbage_and_a_wrong_length() -> None:
    good = sia("Nri1/FA01")
    wrong_length = good[:5] + b"0FFF" + good[9:]  # says 4095 bytes, the frame ends far sooner
    reader = FrameReader()
    chunks = reader.feed(b"noise\r" + b"\nnot a header\r" + wrong_length + good)
    assert [chunk.reason is None for chunk in chunks] == [False, False, True]
    assert chunks[-1].data == good
    assert not reader.overflowed


def test_framing_gives_up_on_a_stream_without_frames() -> None:
    reader = FrameReader()
    reader.feed(b"\n" + b"x" * 5000)
    assert reader.overflowed


def test_the_simulated_hub_says_what_the_receiver_maps_back() -> None:
    from devices.catalogue import CATALOGUE
    from simulators.behaviours import Emission
    from simulators.dc09_hub import CID_OF_EVENT
    from simulators.dc09_live import Dc09Reporter, Dc09Target, account_of, accounts_toml
    from simulators.virtual_devices import simple_fleet

    (device,) = simple_fleet(1, [CATALOGUE["dc09-panel"]])
    assert account_of(device.device_id) == "sim00001dc09panel"[-16:]
    target = Dc09Target(host="127.0.0.1", port=1, key=TEXT_KEY)
    accounts = parse_accounts(tomllib.loads(accounts_toml([device], target)))
    reporter = Dc09Reporter([device], target)
    decide = Receiver(accounts, TimestampWindow())
    for event_type in CID_OF_EVENT:
        for state in ("alarm", "restore"):
            body = {"type": event_type, "state": state}
            emission = Emission(at=NOW, device_id=device.device_id, kind=Uplink.EVENT, body=body)
            frame = reporter.frame(emission, NOW)
            assert frame is not None
            (message,) = decide.handle(frame, NOW).messages
            assert message.device_id == device.device_id
            decoded = payload(message)
            assert (decoded["type"], decoded["state"]) == (event_type, state), event_type
    sos = Emission(at=NOW, device_id=device.device_id, kind=Uplink.SOS)
    frame = reporter.frame(sos, NOW)
    assert frame is not None
    assert decide.handle(frame, NOW).messages[0].kind is Uplink.SOS


def test_the_role_refuses_a_bad_accounts_file_in_one_line(tmp_path: Path) -> None:
    from anxin.settings import ConfigError, load_settings
    from gateways.dc09.role import accounts_of

    path = tmp_path / "dc09.toml"
    path.write_text('[accounts."1234"]\nkey = "too short"\nkey_encoding = "text"\n')
    with pytest.raises(ConfigError, match=r"ANXIN_DC09_ACCOUNTS: .*accounts.'1234'.key: 9"):
        accounts_of(load_settings(dc09_accounts=path))
    path.write_text("not toml [")
    with pytest.raises(ConfigError, match="not TOML"):
        accounts_of(load_settings(dc09_accounts=path))
    with pytest.raises(ConfigError, match="cannot read"):
        accounts_of(load_settings(dc09_accounts=tmp_path / "missing.toml"))
