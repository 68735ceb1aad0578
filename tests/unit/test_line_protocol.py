"""Line protocol: every name and value comes back as written, as InfluxDB's parser reads it."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from devices.events import Heartbeat, SosPressed, TelemetryReport
from devices.registry import DeviceInfo
from ingest.telemetry.points import (
    Point,
    batch_points,
    encode_batch,
    encode_line,
    points_of,
    sanitized,
)

# Text as devices and registries send it: Chinese, and every character line protocol escapes.
SPECIAL = " ,=\"'\\\n\r\t#"
text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(SPECIAL)),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK
        st.characters(codec="utf-8", exclude_characters="\x00"),
    ),
    min_size=1,
    max_size=30,
)


def _split(line: str, separators: str) -> tuple[str, str, str]:
    """InfluxDB's scan: a backslash takes the next character as is; the first unescaped
    separator ends the part. Returns (raw part, separator, rest)."""
    i = 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] in separators:
            return line[:i], line[i], line[i + 1 :]
        i += 1
    return line, "", ""


def _unescape(raw: str) -> str:
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in ", =":
            out.append(raw[i + 1])
            i += 2
            continue
        out.append(raw[i])
        i += 1
    return "".join(out)


def parse(line: str) -> Point:
    """A line of line protocol as InfluxDB 1.x reads it (the parts anxin writes)."""
    head, _, rest = _split(line, " ")
    # Only a quoted string field may hold a line break (InfluxDB reads it as part of it).
    assert "\n" not in head
    assert "\r" not in head
    measurement, sep, tag_part = _split(head, ",")
    tags = {}
    while sep:
        pair, sep, tag_part = _split(tag_part, ",")
        key, eq, value = _split(pair, "=")
        assert eq == "=", f"bad tag in {line!r}"
        assert value, f"empty tag value in {line!r}"
        assert not value.endswith("\\"), "InfluxDB refuses a tag value ending in a backslash"
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, float | int | bool | str] = {}
    while True:
        key, eq, rest = _split(rest, "=")
        assert eq == "="
        if rest.startswith('"'):
            value, i = [], 1
            while rest[i] != '"':
                if rest[i] == "\\" and rest[i + 1] in '\\"':
                    i += 1
                value.append(rest[i])
                i += 1
            fields[_unescape(key)] = "".join(value)
            rest = rest[i + 1 :]
            sep = rest[:1]
            rest = rest[1:]
        else:
            raw, sep, rest = _split(rest, ", ")
            fields[_unescape(key)] = _number(raw)
        if sep != ",":
            break
    return Point(_unescape(measurement), tags, fields, int(rest))


def _number(raw: str) -> float | int | bool:
    if raw in ("true", "false"):
        return raw == "true"
    return int(raw[:-1]) if raw.endswith("i") else float(raw)


@given(community=text, metric=text, value=text)
def test_tags_fields_and_strings_survive(community: str, metric: str, value: str) -> None:
    point = Point(
        "telemetry",
        {"community": community, "device_id": "d-1", "model": "sos-pendant"},
        {metric: 1.5, "note": value, "n": 3, "ok": True},
        1_700_000_000_123,
    )
    line = encode_line(point)
    if sanitized(metric) == "time":
        return
    assert line is not None
    read = parse(line)
    assert read.measurement == "telemetry"
    assert read.tags == {
        "community": sanitized(community),
        "device_id": "d-1",
        "model": "sos-pendant",
    }
    # A metric called like one of the other fields takes its place, as in a dict.
    expected = {"note": value, "n": 3, "ok": True, sanitized(metric): 1.5}
    assert read.fields == expected
    assert read.time_ms == point.time_ms


def test_what_line_protocol_cannot_carry_becomes_a_look_alike() -> None:
    assert sanitized("张家口市\\花园\n社区\r") == "张家口市＼花园 社区 "
    line = encode_line(Point("m", {"c": "幸福 社区,a=b"}, {"温度 c,x=1": 2.0}, 5))
    assert line == r"m,c=幸福\ 社区\,a\=b 温度\ c\,x\=1=2.0 5"


def test_string_fields_keep_newlines_quotes_and_backslashes() -> None:
    line = encode_line(Point("m", {}, {"s": 'a"b\\c\nd'}, 1))
    assert line == 'm s="a\\"b\\\\c\nd" 1'


def test_fields_influxdb_refuses_are_left_out() -> None:
    point = Point("m", {"t": ""}, {"time": 1.0, "": 2.0, "nan": float("nan"), "ok": 3.0}, 9)
    assert encode_line(point) == "m ok=3.0 9"
    assert encode_line(Point("m", {}, {"time": 1.0, "inf": float("inf")}, 9)) is None
    assert encode_batch([Point("m", {}, {"time": 1.0}, 9)]) is None
    # Only as a key: a tag value "time" is fine; a tag key "time" is left out.
    assert (
        encode_line(Point("m", {"t": "time", "time": "x"}, {"ok": 1.0}, 9)) == "m,t=time ok=1.0 9"
    )


def test_tags_are_sorted_by_key() -> None:
    line = encode_line(Point("m", {"model": "x", "community": "c", "device_id": "d"}, {"f": 1}, 1))
    assert line == "m,community=c,device_id=d,model=x f=1i 1"


NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
DEVICE = DeviceInfo(device_id="w-1", model="smart-watch", elder_id=1, community="北京市/朝阳区")


def _common() -> dict[str, object]:
    return {"device_id": "w-1", "received_at": NOW, "occurred_at": NOW}


def test_heartbeat_point() -> None:
    [point] = points_of(Heartbeat(**_common(), battery=80, rssi=-71), DEVICE)  # type: ignore[arg-type]
    assert point.measurement == "heartbeat"
    assert point.fields == {"seen": 1, "battery": 80.0, "rssi": -71.0}
    assert point.tags == {"device_id": "w-1", "model": "smart-watch", "community": "北京市/朝阳区"}
    assert point.time_ms == int(NOW.timestamp() * 1000)


def test_telemetry_point_numbers_are_floats() -> None:
    event = TelemetryReport(**_common(), metrics={"heart_rate": 72, "spo2": 97.5})  # type: ignore[arg-type]
    [point] = points_of(event, DEVICE)
    assert point.measurement == "telemetry"
    assert point.fields == {"heart_rate": 72.0, "spo2": 97.5}
    assert all(type(v) is float for v in point.fields.values())


def test_no_points_for_unregistered_retained_or_other_messages() -> None:
    beat = Heartbeat(**_common())  # type: ignore[arg-type]
    assert points_of(beat, None) == []
    assert points_of(Heartbeat(**_common(), retained=True), DEVICE) == []  # type: ignore[arg-type]
    assert points_of(SosPressed(**_common(), battery=50), DEVICE) == []  # type: ignore[arg-type]
    no_community = DeviceInfo(device_id="w-1", model="smart-watch", elder_id=None)
    assert "community" not in points_of(beat, no_community)[0].tags


def test_a_batchs_points_are_each_messages_points_in_order() -> None:
    """batch_points shares a device's tags within the batch, and only while it is the same
    registration: a device read again (a new DeviceInfo) gets its own."""
    moved = DeviceInfo(device_id="w-1", model="smart-watch", elder_id=1, community="上海市")
    other = DeviceInfo(device_id="w-2", model="sos-pendant", elder_id=None)
    messages = [
        (Heartbeat(**_common(), battery=80, rssi=-71), DEVICE),
        (TelemetryReport(**_common(), metrics={"spo2": 97}, rssi=-50), DEVICE),
        (SosPressed(**_common(), battery=50), DEVICE),
        (Heartbeat(**_common(), battery=70), other),
        (Heartbeat(**_common()), None),
        (Heartbeat(**_common(), rssi=-60), moved),
        (Heartbeat(**_common(), battery=60), DEVICE),
    ]
    points = batch_points(messages)  # type: ignore[arg-type]
    assert points == [p for event, device in messages for p in points_of(event, device)]  # type: ignore[arg-type]
    assert [p.tags.get("community") for p in points] == ["北京市/朝阳区"] * 2 + [None] + [
        "上海市",
        "北京市/朝阳区",
    ]
