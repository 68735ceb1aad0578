from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codec import NativeCodec
from devices.events import (
    AvailabilityChanged,
    Heartbeat,
    Rejected,
    SensorEvent,
    SosPressed,
    TelemetryReport,
)
from devices.payloads import MAX_PAYLOAD_BYTES

NOW = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)
codec = NativeCodec()


def decode(topic: str, payload: bytes | str) -> object:
    raw = payload.encode() if isinstance(payload, str) else payload
    return codec.decode(topic, raw, NOW)


def test_an_empty_object_is_a_heartbeat() -> None:
    event = decode("anxin/v1/d1/heartbeat", "{}")
    assert event == Heartbeat(device_id="d1", received_at=NOW, occurred_at=NOW)


def test_heartbeat_fields_and_unknown_extras_are_kept() -> None:
    body = {"seq": 4, "battery": 55.5, "rssi": -71, "ts": "2026-11-22T03:09:00Z", "fw": "2.1"}
    event = decode("anxin/v1/d1/heartbeat", json.dumps(body))
    assert isinstance(event, Heartbeat)
    assert (event.seq, event.battery, event.rssi) == (4, 55.5, -71)
    assert event.occurred_at == datetime(2026, 11, 22, 3, 9, tzinfo=UTC)
    assert event.clock_skew_s == -60
    assert event.attributes == {"fw": "2.1"}


@pytest.mark.parametrize("payload", ["", "{}", "  "])
def test_an_empty_sos_is_a_valid_sos(payload: str) -> None:
    event = decode("anxin/v1/d1/sos", payload)
    assert isinstance(event, SosPressed)
    assert event.payload_error is None


def test_sos_location_and_trigger() -> None:
    body = {"location": {"lat": 40.8, "lon": 114.9, "accuracy_m": 12}, "trigger": "watch"}
    event = decode("anxin/v1/d1/sos", json.dumps(body))
    assert isinstance(event, SosPressed)
    assert event.location == {"lat": 40.8, "lon": 114.9, "accuracy_m": 12}
    assert event.trigger == "watch"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"{not json", "JSON"),
        (b"\xff\xfe", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"battery": 101}', "battery"),
        (b'{"trigger": "telepathy"}', "trigger"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "too large"),
    ],
)
def test_an_unreadable_sos_is_still_an_sos(payload: bytes, error: str) -> None:
    event = decode("anxin/v1/d1/sos", payload)
    assert isinstance(event, SosPressed)
    assert event.payload_error is not None
    assert error in event.payload_error


def test_events_with_type_and_state() -> None:
    event = decode("anxin/v1/d1/event", '{"type": "water_leak", "state": "restore", "zone": 3}')
    assert isinstance(event, SensorEvent)
    assert (event.type, event.restore, event.zone) == ("water_leak", True, "3")


@pytest.mark.parametrize(
    ("cid", "kind", "restore"),
    [("1111", "smoke", False), ("3111", "smoke", True), ("1162", "co", False),
     ("1301", "power_loss", False), ("1602", "test", False), ("6154", "water_leak", False)],
)  # fmt: skip
def test_contact_id_codes_become_events(cid: str, kind: str, restore: bool) -> None:
    event = decode("anxin/v1/panel-1/event", json.dumps({"cid": cid}))
    assert isinstance(event, SensorEvent)
    assert (event.type, event.restore, event.contact_id) == (kind, restore, cid)


def test_a_gateways_dead_letter_is_rejected_with_its_reason() -> None:
    payload = b'{"dead_letter": "dc09: unknown SIA code ZX", "dc09": {"data": "Nri1/ZX01"}}'
    event = decode("anxin/v1/panel-1/event", payload.decode())
    assert isinstance(event, Rejected)
    assert (event.reason, event.device_id, event.payload) == (
        "dc09: unknown SIA code ZX", "panel-1", payload,
    )  # fmt: skip


@pytest.mark.parametrize("cid", ["1100", "1101", "6101"])
def test_contact_id_personal_emergency_is_an_sos(cid: str) -> None:
    event = decode("anxin/v1/panel-1/event", json.dumps({"cid": cid}))
    assert isinstance(event, SosPressed)
    assert event.attributes["cid"] == cid


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("anxin/v1/d1/event", '{"type": "explode"}', "unknown event type"),
        ("anxin/v1/d1/event", "{}", "needs type or cid"),
        ("anxin/v1/d1/event", '{"cid": "1999"}', "unknown Contact ID code"),
        ("anxin/v1/d1/event", '{"cid": "3101"}', "SOS restore"),
        ("anxin/v1/d1/telemetry", '{"metrics": {"heart_rate": "fast"}}', "metrics.heart_rate"),
        ("anxin/v1/d1/heartbeat", '{"seq": -1}', "seq"),
        ("anxin/v1/d1/status", "maybe", "online or offline"),
        ("anxin/v1/d1/cmd", "{}", "unknown topic"),
        ("elsewhere/d1/sos", "{}", "unknown topic"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(topic: str, payload: str, reason: str) -> None:
    event = decode(topic, payload)
    assert isinstance(event, Rejected)
    assert reason in event.reason
    assert event.topic == topic


def test_telemetry_and_status() -> None:
    report = decode("anxin/v1/d1/telemetry", '{"metrics": {"temperature_c": 21.5, "spo2": 97}}')
    assert isinstance(report, TelemetryReport)
    assert report.metrics == {"temperature_c": 21.5, "spo2": 97}
    status = decode("anxin/v1/d1/status", "offline")
    assert status == AvailabilityChanged(
        device_id="d1", received_at=NOW, occurred_at=NOW, online=False
    )


topics = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["heartbeat", "sos", "event", "telemetry", "status", "ack", "x"]).map(
        lambda kind: f"anxin/v1/dev-1/{kind}"
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["ts", "seq", "battery", "rssi", "type", "state", "cid", "metrics",
                         "location", "trigger", "zone", "value"]),
        json_values,
    ).map(lambda v: json.dumps(v).encode()),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(topic=topics, payload=payloads)
def test_any_bytes_on_any_topic_give_an_event_or_a_rejection(topic: str, payload: bytes) -> None:
    event = codec.decode(topic, payload, NOW)
    if topic.endswith("/sos") and topic.startswith("anxin/v1/dev-1"):
        assert isinstance(event, SosPressed)  # an SOS is never dropped
    if not isinstance(event, Rejected):
        json.dumps(event.attributes, allow_nan=False)  # what is kept can be stored
    assert isinstance(
        event,
        Heartbeat | SosPressed | SensorEvent | TelemetryReport | AvailabilityChanged | Rejected,
    )


def test_an_sos_with_one_bad_field_keeps_the_rest() -> None:
    body = json.dumps({"battery": 150, "location": {"room": "卫生间"}, "trigger": "pullcord"})
    event = decode("anxin/v1/d1/sos", body)
    assert isinstance(event, SosPressed)
    assert event.location == {"room": "卫生间"}
    assert event.trigger == "pullcord"
    assert event.battery is None
    assert event.payload_error is not None
    assert "battery" in event.payload_error


@pytest.mark.parametrize("field", ["ts", "battery", "rssi", "seq"])
def test_a_boolean_is_not_a_number(field: str) -> None:
    event = decode("anxin/v1/d1/heartbeat", json.dumps({field: True}))
    assert isinstance(event, Rejected)
    assert field in event.reason


def test_non_finite_numbers_in_unknown_fields_are_kept_as_text() -> None:
    event = decode("anxin/v1/d1/sos", b'{"x": NaN, "nested": {"y": [Infinity]}}')
    assert isinstance(event, SosPressed)
    assert event.payload_error is None
    assert event.attributes == {"x": "nan", "nested": {"y": ["inf"]}}
    json.dumps(event.attributes, allow_nan=False)  # storable as SQL JSON


def test_nul_characters_in_kept_fields_are_replaced() -> None:
    event = decode("anxin/v1/d1/heartbeat", '{"note": "a\\u0000b", "k\\u0000": 1}')
    assert isinstance(event, Heartbeat)
    assert event.attributes == {"note": "a\ufffdb", "k\ufffd": 1}


def test_a_huge_ts_is_not_an_exception() -> None:
    event = decode("anxin/v1/d1/heartbeat", '{"ts": 1' + "0" * 400 + "}")
    assert isinstance(event, Heartbeat)
    assert event.clock_skew_s is None


def test_seq_is_a_64_bit_counter() -> None:
    assert isinstance(decode("anxin/v1/d1/heartbeat", json.dumps({"seq": 2**63 - 1})), Heartbeat)
    event = decode("anxin/v1/d1/heartbeat", json.dumps({"seq": 2**63}))
    assert isinstance(event, Rejected)
    assert "seq" in event.reason


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 100, 100.0, 100.5, -0.0, 2**63 - 1, 2**63, 1e19, 1764680400000]),
    st.sampled_from([10**30, -(10**30), 10**400, 2**64, -(2**63) - 1, 1e300, 5e-324]),
    st.sampled_from(
        ["x", "2026-11-22T03:10:00+00:00", "1764680400", "2026-11-22T11:10:00.142+08:00"]
    ),
    st.sampled_from(["2026-11-22T03:10:00", "", "\ud800", "2026-11-22 03:10:00Z", "\u0000"]),
    st.text(max_size=30),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["ts", "seq", "battery", "rssi", "extra"]), _VALUES, max_size=5)
)
def test_the_quick_heartbeat_is_pydantics_heartbeat(body: dict[str, object]) -> None:
    """The quick path gives what HeartbeatPayload gives, value and type, or leaves it be."""
    payload = json.dumps(body).encode()
    slow = _quick_is_pydantics(payload)
    if slow is not None:
        assert decode("anxin/v1/p1/heartbeat", payload) == slow


def _quick_is_pydantics(payload: bytes) -> Heartbeat | None:
    """Assert that the quick path gives HeartbeatPayload's heartbeat, value and type, or
    leaves it be (None where pydantic refuses it too); pydantic's heartbeat, if any."""
    from devices import codec as module
    from devices.payloads import HeartbeatPayload

    quick = module._plain_heartbeat("p1", payload, NOW)
    try:
        beat = HeartbeatPayload.model_validate_json(payload)
    except ValueError:
        assert quick is None
        return None
    slow = Heartbeat(**module._common("p1", beat, NOW))
    if quick is not None:
        assert quick == slow
        for name in ("seq", "battery", "rssi", "clock_skew_s"):
            assert type(getattr(quick, name)) is type(getattr(slow, name))
    return slow


# JSON text as devices may write it: numbers in every form the grammar allows (and a few it
# does not), a key twice, an escaped key, odd spacing.
_NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?\Z"),
    st.sampled_from(["1e400", "-1e400", "1e-400", "-0", "-0.0", "01", "1.", ".5", "+1", "NaN",
                     "Infinity", "true", "null", '"5"', "[1]", "1" + "0" * 400,
                     '"2026-11-22T03:10:00+00:00"', '"2026-11-22T11:10:00.1+08:00"', '"\\ud800"',
                     '"\\u0032026-11-22T03:10:00Z"', '""', '"x"']),
)  # fmt: skip
_KEY_TEXT = st.sampled_from(['"ts"', '"seq"', '"battery"', '"rssi"', '"t\\u0073"', '"x"'])


@settings(max_examples=300, deadline=None)
@given(
    members=st.lists(st.tuples(_KEY_TEXT, _NUMBER_TEXT), max_size=5),
    space=st.sampled_from(["", " ", "\n\t", "\r\n "]),
)
def test_the_quick_heartbeat_reads_json_text_as_pydantic_does(
    members: list[tuple[str, str]], space: str
) -> None:
    inner = ",".join(f"{space}{key}{space}:{space}{value}" for key, value in members)
    _quick_is_pydantics(f"{space}{{{inner}}}{space}".encode())


def test_a_plain_heartbeat_takes_the_quick_way() -> None:
    from devices import codec as module

    payload = b'{"seq": 7, "battery": 90, "rssi": -60, "ts": 1795316400000}'
    quick = module._plain_heartbeat("p1", payload, NOW)
    assert quick is not None
    assert (quick.seq, quick.battery, quick.rssi) == (7, 90, -60)
    # A text ts too (what the simulators write): read as parse_device_ts reads it.
    text = module._plain_heartbeat("p1", b'{"ts": "2026-11-22T11:10:00.142+08:00"}', NOW)
    assert text is not None
    assert text.occurred_at != NOW
    slow = decode("anxin/v1/p1/heartbeat", '{"ts": "2026-11-22T11:10:00.142+08:00"}')
    assert isinstance(slow, Heartbeat)
    assert text.occurred_at == slow.occurred_at
    assert module._plain_heartbeat("p1", b'{"battery": 90, "room": "kitchen"}', NOW) is None


def test_uplink_topics_are_parsed_once_and_kept_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from devices import codec as module

    fresh = NativeCodec()
    monkeypatch.setattr(module, "TOPIC_CACHE_BOUND", 3)
    for _ in range(2):
        assert isinstance(fresh.decode("anxin/v1/d1/heartbeat", b"{}", NOW), Heartbeat)
        assert isinstance(fresh.decode("anxin/v1/d1/nonsense", b"{}", NOW), Rejected)
    assert list(fresh._topics) == ["anxin/v1/d1/heartbeat"]  # an unknown topic is not kept
    for k in range(2, 5):
        fresh.decode(f"anxin/v1/d{k}/heartbeat", b"{}", NOW)
    assert list(fresh._topics) == ["anxin/v1/d4/heartbeat"]  # emptied when full
    event = fresh.decode("anxin/v1/d2/heartbeat", b"{}", NOW)
    assert isinstance(event, Heartbeat)
    assert event.device_id == "d2"
