"""Traffic files (contract §3) and the comparison with a scenario's expected alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerting.model import AlertStatus, AlertType
from simulators.expect import differences
from simulators.scenario import ExpectedAlert
from simulators.traffic import (
    LinkChange,
    TrafficFormatError,
    TrafficMessage,
    TrafficWriter,
    _validated_line,
    _written_message,
    decode_line,
    encode_line,
    read_traffic,
)

WHEN = datetime(2026, 3, 2, 3, 10, 0, 123456, tzinfo=UTC)


def test_text_and_bytes_and_links_go_round() -> None:
    text = TrafficMessage(time=WHEN, topic="a/b", payload="心跳".encode(), qos=1, retain=True)
    raw = TrafficMessage(time=WHEN, topic="a/b", payload=b"\xff\x00", qos=0)
    link = LinkChange(time=WHEN, up=False)
    assert encode_line(text) == (
        '{"time": "2026-03-02T03:10:00.123456Z", "topic": "a/b", "qos": 1, "retain": true, '
        '"payload": "心跳"}'
    )
    assert '"payload_b64": "/wA="' in encode_line(raw)
    for item in (text, raw, link):
        assert decode_line(encode_line(item)) == item


@pytest.mark.parametrize(
    "line",
    [
        encode_line(TrafficMessage(time=WHEN, topic="a/b", payload="心跳".encode(), qos=2)),
        encode_line(TrafficMessage(time=WHEN, topic="a", payload=b"", retain=True)),
        '{"time": "2026-03-02T03:10:00.000001Z", "topic": "a", "qos": 0, "retain": false,'
        ' "payload": "\\u00e9\\""}',
    ],
)
def test_a_written_line_is_read_the_quick_way_as_the_model_reads_it(line: str) -> None:
    quick = _written_message(line)
    assert quick is not None
    assert quick == _validated_line(line)
    assert quick.time.tzinfo is UTC


@pytest.mark.parametrize(
    "line",
    [
        '{"time": "2026-03-02T03:10:00.123456+00:00", "topic": "a", "qos": 0, "retain": false,'
        ' "payload": ""}',
        '{"time": "2026-03-02T03:10:00Z", "topic": "a", "qos": 0, "retain": false, "payload": ""}',
        '{"time": "2026-03-02T03:10:00.123456Z", "topic": "a", "qos": "1", "retain": false,'
        ' "payload": ""}',
        '{"time": "2026-03-02T03:10:00.123456Z", "topic": "a", "qos": 0, "retain": 1,'
        ' "payload": ""}',
        '{"time": "2026-03-02T03:10:00.123456Z", "topic": "a", "payload": ""}',
        '{"time": "2026-03-02T03:10:00.123456Z", "topic": "a", "qos": 0, "retain": false,'
        ' "payload_b64": "/wA="}',
        encode_line(LinkChange(time=WHEN, up=True)),
    ],
)
def test_any_other_line_is_left_to_the_model(line: str) -> None:
    assert _written_message(line) is None
    assert decode_line(line) == _validated_line(line)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"topic": "a", "payload": ""}', "time: Field required"),
        ('{"time": "2026-03-02T03:10:00", "topic": "a", "payload": ""}', "timezone"),
        ('{"time": "2026-03-02T03:10:00Z", "topic": "a"}', "exactly one of payload"),
        ('{"time": "2026-03-02T03:10:00Z", "topic": "a", "payload_b64": "%%"}', "not base64"),
        ('{"time": "2026-03-02T03:10:00Z", "topic": "a", "payload": "", "qos": 3}', "qos"),
        ('{"time": "2026-03-02T03:10:00Z", "link": "sideways"}', "link"),
        ("not json", "Invalid JSON"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "t.jsonl"
    good = encode_line(TrafficMessage(time=WHEN, topic="a", payload=b"{}"))
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(TrafficFormatError, match=rf"t\.jsonl:3: .*{problem}"):
        list(read_traffic(path))


def test_the_writer_writes_a_line_each(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        writer = TrafficWriter(handle)
        writer.write(TrafficMessage(time=WHEN, topic="a", payload=b"x"))
        writer.write(LinkChange(time=WHEN, up=True))
    assert len(list(read_traffic(path))) == writer.lines == 2


def alert(device: str, kind: str, status: str = "new", count: int = 1) -> dict[str, object]:
    return {
        "device_id": device,
        "type": kind,
        "status": status,
        "count": count,
        "created_at": WHEN.isoformat(),
    }


def test_differences_name_what_is_missing_unexpected_or_not_as_expected() -> None:
    expected = {
        ("d1", AlertType.FALL): ExpectedAlert(
            device_id="d1", type=AlertType.FALL, status=AlertStatus.CANCELLED
        ),
        ("d2", AlertType.SOS): ExpectedAlert(device_id="d2", type=AlertType.SOS, count=2),
        ("d3", AlertType.SMOKE): ExpectedAlert(device_id="d3", type=AlertType.SMOKE),
    }
    assert differences(expected, [alert("d1", "fall", "cancelled"), alert("d2", "sos", count=2),
                                  alert("d3", "smoke")]) == []  # fmt: skip
    found = differences(
        expected,
        [alert("d1", "fall"), alert("d2", "sos"), alert("d4", "gas")],
    )
    assert found == [
        "d1: fall is new, expected cancelled",
        "d2: sos count 1, expected 2",
        "d3: expected 1 smoke alert(s), got 0",
        f"d4: unexpected gas alert (new, count 1, created {WHEN.isoformat()})",
    ]
