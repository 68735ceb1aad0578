"""The watch codec on real public frames: framing, parsing, translation, replies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from devices.payloads import EventPayload, HeartbeatPayload, SosPayload, TelemetryPayload
from devices.topics import Uplink
from gateways.watch.downlinks import (
    DownlinkError,
    commands_for,
    message_for_ack,
    utf16_hex,
)
from gateways.watch.frames import (
    FrameError,
    Framer,
    FramingProblem,
    RawFrame,
    Skipped,
    encode_frame,
    escape,
    parse_frame,
    unescape,
)
from gateways.watch.messages import (
    Alarm,
    Health,
    History,
    Link,
    Other,
    Position,
    Voice,
    classify,
    read_message,
)
from gateways.watch.translate import (
    DEVICE_ALARM,
    ReplyWhen,
    fix_of,
    translate,
    unreadable_alarm,
)
from tests.unit.watch_corpus import (
    JXTK_CHUNK,
    TK_AUDIO,
    TK_WIRE,
    TRACCAR_DECODER,
    TRACCAR_FRAMER,
    VENDOR,
    VENDOR_SERVER,
)

REAL = [f.encode() for f in TRACCAR_DECODER + VENDOR]
PAYLOAD_MODELS = {
    Uplink.HEARTBEAT: HeartbeatPayload,
    Uplink.SOS: SosPayload,
    Uplink.EVENT: EventPayload,
    Uplink.TELEMETRY: TelemetryPayload,
}


def frames_of(data: bytes, framer: Framer | None = None) -> list[bytes]:
    out = (framer or Framer()).feed(data)
    return [item.data for item in out if isinstance(item, RawFrame)]


def translated(text: str):  # type: ignore[no-untyped-def]
    frame = parse_frame(text.encode())
    return translate(frame, read_message(frame))


# --- the whole corpus ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", REAL, ids=[r[:40].decode() for r in REAL])
def test_every_real_frame_frames_parses_and_translates_into_valid_contract_payloads(
    raw: bytes,
) -> None:
    assert frames_of(raw) == [raw]
    frame = parse_frame(raw)
    result = translate(frame, read_message(frame))
    for publication in result.publications:
        # What the gateway publishes is what ingest's codec accepts, field for field.
        model = PAYLOAD_MODELS[publication.kind]
        model.model_validate(dict(publication.payload))


def test_corpus_by_type() -> None:
    """The frames the codec is tested on, by type (the figure of the issue's closing note)."""
    streamed = {bytes.fromhex(e) for _, expected in TRACCAR_FRAMER for e in expected}
    every = [*REAL, *sorted(streamed), TK_WIRE, JXTK_CHUNK]
    counts = Counter(classify(parse_frame(frames_of(raw)[0])) for raw in every)
    print("frames by type:", dict(sorted(counts.items())), "total", sum(counts.values()))
    assert sum(counts.values()) == 52 + 8 + 2  # decoder+vendor, framer streams, TK, JXTK
    assert (counts["UD"], counts["AL"], counts["UD2"], counts["LK"]) == (19, 8, 8, 9)


def test_length_mismatches_are_counted_not_refused() -> None:
    traccar = [parse_frame(t.encode()) for t in TRACCAR_DECODER]
    vendor = [parse_frame(t.encode()) for t in VENDOR]
    # As the design note counted: 14 of Traccar's text frames (mostly SG, often 3 short);
    # two of the vendor's (a UD with a space in it, and CONFIG's literal "len").
    assert sum(not f.length_ok for f in traccar) == 14
    assert sum(not f.length_ok for f in vendor) == 2
    assert all(translate(f, read_message(f)) for f in traccar + vendor if not f.length_ok)
    ud = parse_frame(b"[3G*8800000015*013D*UD," + b"x" * 0x134 + b"]")
    assert (ud.declared_length, ud.wire_length, ud.length_ok) == (0x13D, 3 + 0x134, False)


# --- framing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("stream", "expected"), TRACCAR_FRAMER)
def test_traccar_framer_streams(stream: str, expected: list[str]) -> None:
    assert frames_of(bytes.fromhex(stream)) == [bytes.fromhex(e) for e in expected]


@pytest.mark.parametrize(("stream", "expected"), TRACCAR_FRAMER)
def test_a_stream_fed_byte_by_byte_gives_the_same_frames(stream: str, expected: list[str]) -> None:
    framer = Framer()
    got: list[bytes] = []
    for byte in bytes.fromhex(stream):
        got += frames_of(bytes((byte,)), framer)
    assert got == [bytes.fromhex(e) for e in expected]
    assert framer.pending == 0


def test_ssid_with_matched_brackets_stays_inside_its_frame() -> None:
    stream, _ = TRACCAR_FRAMER[1]
    frame = parse_frame(frames_of(bytes.fromhex(stream))[0])
    assert b"[LG_Wall-Mount A/C]e725" in frame.content
    assert (frame.declared_length, frame.wire_length) == (0x13D, 0x134)  # wrong, read anyway


def test_ssid_with_an_unmatched_bracket_ends_at_the_next_frame() -> None:
    broken = b"[3G*8800000015*0010*UD,280316,1,my[wifi,-50]"
    lk = b"[3G*8800000015*0002*LK]"
    assert frames_of(broken + lk) == [broken, lk]


def test_junk_before_a_frame_is_skipped_and_counted() -> None:
    out = Framer().feed(b"\r\nGET / HTTP/1.1\r\n[SG*8800000015*0002*LK]")
    assert out[0] == Skipped(problem=FramingProblem.JUNK, size=18)
    assert out[1] == RawFrame(data=b"[SG*8800000015*0002*LK]")


def test_a_frame_without_end_is_bounded_and_the_stream_recovers() -> None:
    framer = Framer(max_frame=64)
    out = framer.feed(b"[3G*8800000015*FFFF*TK," + b"A" * 100)
    assert any(isinstance(i, Skipped) and i.problem is FramingProblem.TOO_LARGE for i in out)
    assert framer.pending <= 64
    tail = framer.feed(b"junk]" + b"[3G*8800000015*0002*LK]")
    assert [i for i in tail if isinstance(i, RawFrame)] == [
        RawFrame(data=b"[3G*8800000015*0002*LK]")
    ]


def test_escapes_round_trip_and_voice_counts_escaped_bytes() -> None:
    frame = parse_frame(frames_of(TK_WIRE)[0])
    assert frame.content == b"TK," + TK_AUDIO
    assert escape(unescape(b"a}\x01b}\x05")) == b"a}\x01b}\x05"
    assert unescape(escape(bytes(range(256)))) == bytes(range(256))
    chunk = parse_frame(frames_of(JXTK_CHUNK)[0])
    assert chunk.vendor == "ZJ"
    assert chunk.index == "0039"
    assert chunk.declared_length == chunk.wire_length == 0xE5  # escaped bytes on the wire
    assert len(chunk.content) < chunk.wire_length
    assert isinstance(read_message(chunk), Voice)
    assert translate(chunk, read_message(chunk)).reply == "JXTKR,1"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[]", "fewer than four"),
        (b"[3G*88*0002*LK]", "id is not"),
        (b"[3G*88000000a5*0002*LK]", "id is not"),
        (b"[3G-X*8800000015*0002*LK]", "vendor"),
        (b"[3G*8800000015]", "fewer than four"),
    ],
)
def test_unreadable_headers_are_errors_with_a_reason(raw: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        parse_frame(raw)


def test_index_is_read_and_echoed() -> None:
    frame = parse_frame(b"[ZJ*014111001350304*0034*0009*LK,0,0,19]")
    assert (frame.index, frame.declared_length, frame.type) == ("0034", 9, "LK")
    reply = encode_frame(frame.vendor, frame.device_id, "LK", index=frame.index)
    assert reply == b"[ZJ*014111001350304*0034*0002*LK]"


@pytest.mark.parametrize(("device_id", "content", "expected"), VENDOR_SERVER)
def test_encoded_frames_match_the_vendor_examples(
    device_id: str, content: str, expected: str
) -> None:
    # The document writes the length in either case (000A, 000a); anxin writes upper case.
    assert encode_frame("3G", device_id, content).decode().lower() == expected.lower()


# --- messages -----------------------------------------------------------------------------


def test_position_record_fields_signs_and_time() -> None:
    record = read_message(parse_frame(TRACCAR_DECODER[20].encode()))
    assert isinstance(record, History)
    assert record.record.time == datetime(2016, 7, 21, 23, 16, 1, tzinfo=UTC)
    assert (round(record.record.lat or 0, 5), round(record.record.lon or 0, 5)) == (
        -33.48037,
        -70.76307,
    )
    bolivia = read_message(parse_frame(TRACCAR_DECODER[24].encode()))
    assert isinstance(bolivia, Position)
    assert bolivia.record.lat == pytest.approx(-16.479064)
    assert bolivia.record.lon == pytest.approx(68.119072)  # no letter: the sign as written
    west = read_message(parse_frame(TRACCAR_DECODER[3].encode()))
    assert isinstance(west, Position)
    assert west.record.lon == pytest.approx(-81.53128)


def test_lk_forms() -> None:
    assert read_message(parse_frame(b"[3G*4700186508*000B*LK,0,10,100]")) == Link(
        steps=0, rolls=10, battery=100, values=("0", "10", "100")
    )
    assert read_message(parse_frame(b"[SG*8800000015*0002*LK]")) == Link()
    two = read_message(parse_frame(b"[SG*9081000548*0009*LK,0,100]"))
    assert isinstance(two, Link)
    assert two.battery is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[3G*2104326058*000E*btemp2,1,35.29]", Health(body_temperature_c=35.29)),
        ("[3G*2104326058*000E*btemp2,0,36.4]", Health(body_temperature_c=36.4)),  # forehead
        ("[3G*2104326058*000E*btemp2,1,1]", Health()),  # "measured too high": no reading
        ("[3G*4700609403*0013*bphrt,120,79,73,,,,]", Health(
            bp_systolic=120, bp_diastolic=79, heart_rate=73)),
        ("[3G*4700609403*0013*BPHRT,0,0,73,170,1,80,70]", Health(heart_rate=73)),
        ("[ZJ*357653059860416*0007*000c*BLOOD,109,68]", Health(bp_systolic=109, bp_diastolic=68)),
        ("[CS*8800000015*0008*PULSE,72]", Health(heart_rate=72)),
        ("[3G*6005412902*0007*heart,0]", Health()),
        ("[3G*8800000015*000B*oxygen,0,98]", Health(spo2=98)),
        ("[ZJ*357653059860416*0007*0007*TEMP,36.6]", Health(body_temperature_c=36.6)),
    ],
)  # fmt: skip
def test_health_readings(text: str, expected: Health) -> None:
    assert read_message(parse_frame(text.encode())) == expected


def test_unicode_digits_are_not_numbers() -> None:
    """Found by the fuzzer: "²" passes str.isdigit() but not int()."""
    record = read_message(
        parse_frame(TRACCAR_DECODER[7].replace(",81,0,0,", ",\u00b2,0,0,").encode())
    )
    assert isinstance(record, Alarm)
    assert record.record.battery is None
    assert record.record.status == 0x00010000  # still an SOS
    bad_al = parse_frame(b"[3G*8800000015*0004*AL,x]")
    fallback = unreadable_alarm(bad_al)
    assert [p.payload["type"] for p in fallback.publications] == [DEVICE_ALARM]
    assert fallback.reply == "AL"


def test_unknown_and_quiet_types() -> None:
    assert read_message(parse_frame(b"[3G*8800000015*0004*WHAT]")) == Other(known=False)
    assert read_message(parse_frame(b"[3G*8308406279*0008*rcapture]")) == Other(known=True)
    assert classify(parse_frame(b"[3G*8800000015*0004*WHAT]")) == "unknown"


# --- translation: alarms ------------------------------------------------------------------


def test_sos_alarm_has_trigger_location_seq_and_waits_for_the_store() -> None:
    result = translated(VENDOR[4].replace("00100018", "00010000"))
    (sos,) = result.publications
    assert sos.kind is Uplink.SOS
    assert sos.payload["trigger"] == "watch"
    assert sos.payload["location"] == {"lat": 22.570512, "lon": 113.8623267, "accuracy_m": 12.4}
    assert sos.payload["seq"] == int(datetime(2016, 9, 18, 6, 41, 53, tzinfo=UTC).timestamp())
    assert sos.payload["ts"] == "2016-09-18T06:41:53Z"
    assert (result.reply, result.reply_when, result.sos_seq) == (
        "AL",
        ReplyWhen.STORED,
        sos.payload["seq"],
    )


def test_sos_without_a_fix_has_no_location() -> None:
    result = translated(TRACCAR_DECODER[7])  # AL, V, status 00010000
    (sos,) = result.publications
    assert sos.kind is Uplink.SOS
    assert "location" not in sos.payload
    assert sos.payload["fix"] == "none"


def test_sos_with_low_battery_is_still_an_sos() -> None:
    """Traccar's first-bit-only decoding calls 00010001 low battery and loses the SOS."""
    result = translated(TRACCAR_DECODER[7].replace("00010000", "00010001"))
    kinds = [(p.kind, p.payload.get("type")) for p in result.publications]
    assert kinds == [(Uplink.SOS, None), (Uplink.EVENT, "low_battery")]
    assert result.reply_when is ReplyWhen.STORED
    both = translated(TRACCAR_DECODER[7].replace("00010000", "00230001"))
    assert [(p.kind, p.payload.get("type")) for p in both.publications] == [
        (Uplink.SOS, None),
        (Uplink.EVENT, "fall"),
        (Uplink.EVENT, "low_battery"),
    ]


def test_every_alarm_bit() -> None:
    def events(status: str) -> list[str]:
        result = translated(TRACCAR_DECODER[7].replace("00010000", status))
        return [str(p.payload.get("type", p.kind.value)) for p in result.publications]

    assert events("00200000") == ["fall"]
    assert events("00020000") == ["low_battery"]
    assert events("00000001") == ["low_battery"]
    assert events("00100000") == ["removed"]
    assert events("00100018") == ["removed"]  # the vendor's example: removed + states
    assert events("00000000") == [DEVICE_ALARM]  # no bit: a person checks, not an SOS
    assert events("00040000") == [DEVICE_ALARM]  # fence only
    assert events("00400000") == [DEVICE_ALARM]  # bit 22: sources disagree
    assert events("zzzz") == [DEVICE_ALARM]


def test_non_sos_alarm_is_answered_after_puback() -> None:
    result = translated(VENDOR[5])  # AL_LTE fall
    assert [p.payload["type"] for p in result.publications] == ["fall"]
    assert (result.reply, result.reply_when, result.sos_seq) == ("AL", ReplyWhen.PUBACK, None)


def test_repeats_of_one_alarm_have_one_seq() -> None:
    first = translated(TRACCAR_DECODER[7])
    again = translated(TRACCAR_DECODER[7].replace(",141,9336,3912,141,", ",139,9336,3912,140,"))
    assert first.sos_seq == again.sos_seq
    later = translated(TRACCAR_DECODER[7].replace("094744", "094812"))
    assert later.sos_seq != first.sos_seq
    no_time = translated(TRACCAR_DECODER[7].replace("271219,094744", "000000,000000"))
    assert (
        no_time.sos_seq
        == translated(TRACCAR_DECODER[7].replace("271219,094744", "000000,000000")).sos_seq
    )


# --- translation: the rest ----------------------------------------------------------------


def test_lk_is_a_heartbeat_with_battery_and_steps_answered_after_puback() -> None:
    result = translated("[3G*8800000015*000D*LK,50,100,100]")
    (beat,) = result.publications
    assert (beat.kind, dict(beat.payload)) == (Uplink.HEARTBEAT, {"battery": 100, "steps": 50})
    assert (result.reply, result.reply_when) == ("LK", ReplyWhen.PUBACK)


def test_live_position_is_a_heartbeat_with_location_and_no_reply() -> None:
    result = translated(TRACCAR_DECODER[4])  # UD_LTE, A
    (beat,) = result.publications
    assert beat.kind is Uplink.HEARTBEAT
    assert beat.payload["location"]["lat"] == pytest.approx(32.162652)
    assert beat.payload["battery"] == 83
    assert result.reply is None


def test_alarm_bits_in_a_live_position_still_raise() -> None:
    result = translated(TRACCAR_DECODER[4].replace("00000000", "00010000"))
    assert [p.kind for p in result.publications] == [Uplink.HEARTBEAT, Uplink.SOS]


def test_history_is_telemetry_never_an_alarm() -> None:
    for text in TRACCAR_DECODER:
        frame = parse_frame(text.encode())
        if classify(frame) != "UD2":
            continue
        for status in ("00010000", "00210001"):
            result = translate(
                frame, read_message(parse_frame(text.replace("00000000", status).encode()))
            )
            assert all(p.kind is Uplink.TELEMETRY for p in result.publications)
            assert all(p.payload["history"] is True for p in result.publications)
            assert all("battery" not in p.payload for p in result.publications)
            assert result.reply is None


def test_health_becomes_telemetry_and_zero_is_no_reading() -> None:
    result = translated("[3G*4700609403*0013*bphrt,120,79,73,,,,]")
    (tele,) = result.publications
    assert tele.payload == {"metrics": {"heart_rate": 73, "bp_systolic": 120, "bp_diastolic": 79}}
    assert (result.reply, result.reply_when) == ("bphrt", ReplyWhen.PUBACK)
    zero = translated("[3G*6005412902*0007*heart,0]")
    assert zero.publications == ()
    assert zero.reply is None
    assert translated("[3G*8800000015*000B*oxygen,0,98]").reply == "oxygen,1"
    assert translated("[3G*8800000015*000B*oxygen,0,85]").reply == "oxygen,0"
    assert translated("[3G*8800000015*000B*oxygen,0,0]").reply == "oxygen,2"
    assert translated("[3G*2104326058*000E*btemp2,1,35.29]").publications[0].payload == {
        "metrics": {"body_temperature_c": 35.29}
    }


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("[3G*8800000015*0003*TKQ]", "TKQ"),
        ("[3G*8800000015*0004*TKQ2]", "TKQ2"),
        ("[3G*8800000015*0006*INIT,1]", "INIT,1"),
        ("[3G*8800000015*len*CONFIG,TY:G75,UL:600,SY:1,CM:1]", "CONFIG,1"),
        ("[3G*8800000015*0004*TK,1]", None),  # the watch's ack of a voice message we sent
        ("[3G*5678901234*0002*CR]", None),  # the watch's echo of a command
        ("[3G*5678901234*0004*WHAT]", None),
    ],
)
def test_replies_the_vendor_document_gives(text: str, reply: str | None) -> None:
    result = translated(text)
    assert (result.publications, result.reply) == ((), reply)
    assert result.reply_when is ReplyWhen.NOW


def test_voice_message_is_acknowledged() -> None:
    frame = parse_frame(frames_of(TK_WIRE)[0])
    assert translate(frame, read_message(frame)).reply == "TK,1"


# --- downlinks ----------------------------------------------------------------------------


def test_acks_become_messages_on_the_screen() -> None:
    assert utf16_hex("好123") == "597D003100320033"  # the vendor's example
    command = message_for_ack(b'{"alert_id":1,"status":"received","message":"\xe5\xa5\xbd"}')
    assert command.content == "MESSAGE,597D"
    assert command.name == "ack_received"
    empty = message_for_ack(b'{"alert_id":1,"status":"help_coming","message":""}')
    assert bytes.fromhex(empty.content.split(",")[1]).decode("utf-16-be") == "工作人员正在赶来。"
    with pytest.raises(DownlinkError):
        message_for_ack(b'{"status":"nope"}')


def test_commands_map_to_the_protocol() -> None:
    def contents(payload: str) -> list[str]:
        return [c.content for c in commands_for(payload.encode())]

    cid = '"id":"3f6c2a9e8b1d4f70a2c5e9d1b7f04a63"'
    assert contents(f'{{"command":"locate","params":{{}},{cid}}}') == ["CR"]
    assert contents(f'{{"command":"ping",{cid}}}') == ["VERNO"]
    assert contents(
        f'{{"command":"configure","params":{{"upload_interval_s":600,'
        f'"measure":"heart_rate","gps":true}},{cid}}}'
    ) == ["UPLOAD,600", "hrtstart,1", "APPLOCK,DW-1"]
    for bad in ('{"upload_interval_s":30}', '{"volume":3}', "{}", '{"gps":false}'):
        with pytest.raises(DownlinkError):
            commands_for(f'{{"command":"configure","params":{bad},{cid}}}'.encode())


def test_an_alarm_without_a_fix_carries_the_last_known_one() -> None:
    ud = parse_frame(TRACCAR_DECODER[4].encode())  # UD_LTE with an A fix
    fix = fix_of(ud_record(ud))
    assert fix is not None
    frame = parse_frame(TRACCAR_DECODER[7].encode())  # AL, V, SOS
    (sos,) = translate(frame, read_message(frame), fix).publications
    assert "location" not in sos.payload
    assert sos.payload["last_known_location"] == {
        "lat": fix.lat,
        "lon": fix.lon,
        "at": "2021-06-30T13:51:01Z",
    }
    with_fix = parse_frame(VENDOR[4].replace("00100018", "00010000").encode())
    (own,) = translate(with_fix, read_message(with_fix), fix).publications
    assert "last_known_location" not in own.payload  # its own fix wins


def ud_record(frame):  # type: ignore[no-untyped-def]
    message = read_message(frame)
    assert isinstance(message, Position)
    return message.record
