"""Virtual Zigbee devices publish what the Zigbee2MQTT adapter reads back as the same events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.catalogue import CATALOGUE
from devices.events import SensorEvent, SosPressed
from devices.topics import Uplink
from devices.zigbee2mqtt import ZigbeeDevice, ZigbeeState, decode
from simulators.behaviours import Emission
from simulators.virtual_devices import Encoder, build_home
from simulators.zigbee_encoding import property_for

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

SEQUENCES = {
    "water-leak": [("water_leak", False), ("water_leak", True), ("tamper", False),
                   ("tamper", True), ("low_battery", False)],
    "door-contact": [("door_open", False), ("door_close", False)],
    "bed-sensor": [("bed_enter", False), ("bed_exit", False)],
    "pir-motion": [("motion", False), ("motion", True)],
    "fall-detector": [("fall", False), ("fall", True)],
    "smoke-detector": [("smoke", False), ("smoke", True), ("test", False)],
    "gas-detector": [("gas", False), ("power_loss", False), ("power_restore", False)],
    "co-detector": [("co", False), ("co", True)],
}  # fmt: skip


@pytest.mark.parametrize("model", sorted(SEQUENCES))
def test_each_event_comes_back_out_of_the_adapter(model: str) -> None:
    (device,) = build_home(1, [CATALOGUE[model]], zigbee=True)
    encoder = Encoder("anxin/v1", [device])
    registered = ZigbeeDevice(device_id=device.device_id, model=model)
    previous: ZigbeeState | None = None
    for event, restore in SEQUENCES[model]:
        body = {"type": event, "battery": 90.0, **({"state": "restore"} if restore else {})}
        emission = Emission(at=NOW, device_id=device.device_id, kind=Uplink.EVENT, body=body)
        message = encoder.encode(emission, NOW)
        assert message is not None, (model, event)
        topic, payload = message
        assert topic == f"zigbee2mqtt/{device.zigbee_name}"
        result = decode(topic, payload, NOW, {device.zigbee_name: registered}.get, previous)
        previous = result.state
        said = {(e.type, e.restore) for e in result.events if isinstance(e, SensorEvent)}
        assert said == {(event, restore)}, (model, event, restore, payload)


def test_an_sos_press_and_availability() -> None:
    (device,) = build_home(1, [CATALOGUE["sos-button"]], zigbee=True)
    encoder = Encoder("anxin/v1", [device])
    sos = Emission(at=NOW, device_id=device.device_id, kind=Uplink.SOS, body={"trigger": "x"})
    message = encoder.encode(sos, NOW)
    assert message is not None
    lookup = {device.zigbee_name: ZigbeeDevice(device_id=device.device_id, model="sos-button")}
    result = decode(message[0], message[1], NOW, lookup.get)
    assert any(isinstance(e, SosPressed) for e in result.events)
    assert encoder.status(device, False) == (
        f"zigbee2mqtt/{device.zigbee_name}/availability",
        b'{"state":"offline"}',
    )


def test_what_zigbee2mqtt_cannot_say_is_not_sent() -> None:
    assert property_for("sos-pendant", "cancel", False) is None
    (device,) = build_home(1, [CATALOGUE["4g-elder-phone"]], zigbee=True)
    checkin = Emission(
        at=NOW, device_id=device.device_id, kind=Uplink.EVENT, body={"type": "checkin"}
    )
    assert Encoder("anxin/v1", [device]).encode(checkin, NOW) is None
