from __future__ import annotations

import pytest

from devices.topics import (
    Downlink,
    Uplink,
    UplinkTopic,
    downlink_topic,
    parse_uplink,
    uplink_filters,
)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("anxin/v1/pendant-7/sos", UplinkTopic(device_id="pendant-7", kind=Uplink.SOS)),
        ("anxin/v1/A_b-9/heartbeat", UplinkTopic(device_id="A_b-9", kind=Uplink.HEARTBEAT)),
        ("anxin/v1/x/status", UplinkTopic(device_id="x", kind=Uplink.STATUS)),
        ("anxin/v1/x/ack", None),  # a downlink is not an uplink
        ("anxin/v1/x/sos/extra", None),
        ("anxin/v1//sos", None),
        ("anxin/v1/bad.id/sos", None),
        ("anxin/v1/" + "a" * 65 + "/sos", None),
        ("other/anxin/v1/x/sos", None),
        ("anxin/v2/x/sos", None),
        ("zigbee2mqtt/kitchen", None),
        ("", None),
    ],
)
def test_parse_uplink(topic: str, expected: UplinkTopic | None) -> None:
    assert parse_uplink(topic) == expected


def test_a_configured_prefix_is_honoured() -> None:
    assert parse_uplink("city/12349/d1/sos", "city/12349") == UplinkTopic(
        device_id="d1", kind=Uplink.SOS
    )
    assert parse_uplink("anxin/v1/d1/sos", "city/12349") is None


def test_filters_cover_every_uplink_and_no_downlink() -> None:
    filters = uplink_filters()
    assert sorted(filters) == sorted(f"anxin/v1/+/{kind}" for kind in Uplink)
    assert not any(f.endswith(("/ack", "/cmd")) for f in filters)


def test_downlink_topic_refuses_what_is_not_a_device_id() -> None:
    assert downlink_topic("d1", Downlink.ACK) == "anxin/v1/d1/ack"
    with pytest.raises(ValueError, match="not a device id"):
        downlink_topic("d1/#", Downlink.ACK)
