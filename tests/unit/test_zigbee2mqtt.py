"""The Zigbee2MQTT adapter, on payloads as zigbee2mqtt publishes them for real devices.

The payloads follow the "Exposes" of each device's page on zigbee2mqtt.io (see docs/devices.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.catalogue import CATALOGUE
from devices.events import (
    AvailabilityChanged,
    Decoded,
    DeviceEvent,
    Heartbeat,
    Rejected,
    SensorEvent,
    SosPressed,
    TelemetryReport,
)
from devices.payloads import MAX_PAYLOAD_BYTES
from devices.topics import DEVICE_ID_PATTERN
from devices.zigbee2mqtt import (
    METRICS,
    STATE_RULES,
    TopicKind,
    ZigbeeDevice,
    ZigbeeResult,
    ZigbeeState,
    ZigbeeTopic,
    decode,
    parse_topic,
    subscription,
    unregistered_device_id,
)

NOW = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)

REGISTRY = {
    "bathroom/leak": ZigbeeDevice(device_id="leak-1", model="water-leak"),
    "hall/motion": ZigbeeDevice(device_id="pir-1", model="pir-motion"),
    "front_door": ZigbeeDevice(device_id="door-1", model="door-contact"),
    "kitchen/smoke": ZigbeeDevice(device_id="smoke-1", model="smoke-detector"),
    "kitchen/gas": ZigbeeDevice(device_id="gas-1", model="gas-detector"),
    "bedroom/co": ZigbeeDevice(device_id="co-1", model="co-detector"),
    "bedside_button": ZigbeeDevice(device_id="btn-1", model="sos-button"),
    "pendant": ZigbeeDevice(device_id="pendant-1", model="sos-pendant"),
    "bathroom/cord": ZigbeeDevice(device_id="cord-1", model="pull-cord"),
    "bedroom/climate": ZigbeeDevice(device_id="temp-1", model="temperature-sensor"),
    "bed": ZigbeeDevice(device_id="bed-1", model="bed-sensor"),
    "radar": ZigbeeDevice(device_id="radar-1", model="fall-detector"),
    "odd": ZigbeeDevice(device_id="odd-1", model="not-in-the-catalogue"),
}


def run(
    name: str,
    body: dict[str, Any] | bytes | str,
    previous: ZigbeeState | None = None,
    *,
    suffix: str = "",
    retained: bool = False,
) -> ZigbeeResult:
    if isinstance(body, dict):
        raw = json.dumps(body).encode()
    else:
        raw = body.encode() if isinstance(body, str) else body
    topic = f"zigbee2mqtt/{name}{suffix}"
    return decode(topic, raw, NOW, REGISTRY.get, previous, retained=retained)


def sequence(name: str, *bodies: dict[str, Any]) -> list[ZigbeeResult]:
    """Feed messages one after the other, as the ingest will, remembering the state."""
    results, state = [], None
    for body in bodies:
        result = run(name, body, state)
        results.append(result)
        state = result.state
    return results


def kinds(events: Sequence[Decoded]) -> list[tuple[str, bool]]:
    """The sensor events, as (type, restore)."""
    return [(e.type, e.restore) for e in events if isinstance(e, SensorEvent)]


def accepted(result: ZigbeeResult) -> list[DeviceEvent]:
    """The events of a message that was not rejected."""
    events = [e for e in result.events if not isinstance(e, Rejected)]
    assert len(events) == len(result.events)
    return events


def sos_of(events: Sequence[Decoded]) -> list[SosPressed]:
    return [e for e in events if isinstance(e, SosPressed)]


# --- topics -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("zigbee2mqtt/front_door", ZigbeeTopic(friendly_name="front_door", kind=TopicKind.STATE)),
        ("zigbee2mqtt/bathroom/leak",
         ZigbeeTopic(friendly_name="bathroom/leak", kind=TopicKind.STATE)),
        ("zigbee2mqtt/bathroom/leak/availability",
         ZigbeeTopic(friendly_name="bathroom/leak", kind=TopicKind.AVAILABILITY)),
        ("zigbee2mqtt/0x00158d0001a2b3c4",
         ZigbeeTopic(friendly_name="0x00158d0001a2b3c4", kind=TopicKind.STATE)),
        ("zigbee2mqtt/bridge/state", None),
        ("zigbee2mqtt/bridge/devices", None),
        ("zigbee2mqtt/bridge/event", None),
        ("zigbee2mqtt/bridge/logging", None),
        ("zigbee2mqtt/bridge/request/permit_join", None),
        ("zigbee2mqtt/bridge/response/device/rename", None),
        ("zigbee2mqtt/home-17/bridge/info", None),
        ("zigbee2mqtt/front_door/set", None),
        ("zigbee2mqtt/front_door/get", None),
        ("zigbee2mqtt/hall/lamp/set/state", None),
        ("zigbee2mqtt/availability", None),
        ("zigbee2mqtt/", None),
        ("zigbee2mqtt", None),
        ("anxin/v1/pendant-1/sos", None),
        ("zigbee2mqttx/front_door", None),
    ],
)  # fmt: skip
def test_topics(topic: str, expected: ZigbeeTopic | None) -> None:
    assert parse_topic(topic) == expected


def test_another_base_topic() -> None:
    assert parse_topic("z2m/home-17/door", "z2m") == ZigbeeTopic(
        friendly_name="home-17/door", kind=TopicKind.STATE
    )
    assert parse_topic("zigbee2mqtt/door", "z2m") is None
    assert subscription("z2m") == "z2m/#"


@pytest.mark.parametrize(
    "topic",
    ["zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/devices", "zigbee2mqtt/front_door/set",
     "zigbee2mqtt/pendant/get", "zigbee2mqtt/bridge/event"],
)  # fmt: skip
def test_bridge_and_command_topics_are_ignored_not_rejected(topic: str) -> None:
    # Even an SOS-looking payload: these are zigbee2mqtt's own topics, or commands to a device.
    result = decode(topic, b'{"action": "emergency", "state": "online"}', NOW, REGISTRY.get)
    assert result == ZigbeeResult(friendly_name=None, events=(), state=None)


# --- model families, as zigbee2mqtt publishes them -------------------------------------------


def test_water_leak_alarms_once_and_restores_xiaomi_sjcgq11lm() -> None:
    base = {"battery": 100, "battery_low": False, "linkquality": 60, "temperature": 24,
            "voltage": 3025}  # fmt: skip
    first, again, clear = sequence(
        "bathroom/leak",
        {**base, "water_leak": True},
        {**base, "water_leak": True, "linkquality": 57},
        {**base, "water_leak": False},
    )
    assert kinds(first.events) == [("water_leak", False)]
    assert kinds(again.events) == []  # still wet: no second alarm
    assert kinds(clear.events) == [("water_leak", True)]
    assert clear.state is None  # nothing active any more: nothing to keep


def test_every_message_of_a_known_device_is_a_heartbeat_with_telemetry() -> None:
    body = {"battery": 97, "battery_low": False, "linkquality": 120, "temperature": 23.5,
            "voltage": 3005, "water_leak": False}  # fmt: skip
    result = run("bathroom/leak", body)
    heartbeat, report = result.events[-1], result.events[-2]
    assert isinstance(heartbeat, Heartbeat)
    assert heartbeat.device_id == "leak-1"
    assert heartbeat.battery == 97
    assert heartbeat.attributes == {"voltage": 3005}  # the properties not mapped, as they came
    assert isinstance(report, TelemetryReport)
    assert report.metrics == {"battery": 97, "temperature_c": 23.5, "linkquality": 120}


def test_heiman_water_leak_with_tamper_hs1wl() -> None:
    base = {"battery": 100, "battery_low": False, "linkquality": 76, "water_leak": False}
    opened, leak = sequence(
        "bathroom/leak", {**base, "tamper": True}, {**base, "tamper": True, "water_leak": True}
    )
    assert kinds(opened.events) == [("tamper", False)]
    assert kinds(leak.events) == [("water_leak", False)]


def test_motion_xiaomi_rtcgq11lm() -> None:
    base = {"battery": 100, "device_temperature": 27, "illuminance": 18, "illuminance_lux": 18,
            "linkquality": 84, "power_outage_count": 11, "voltage": 3035}  # fmt: skip
    seen, still, gone = sequence(
        "hall/motion",
        {**base, "occupancy": True},
        {**base, "occupancy": True, "battery": 99},
        {**base, "occupancy": False},
    )
    assert kinds(seen.events) == [("motion", False)]
    assert kinds(still.events) == []
    assert kinds(gone.events) == [("motion", True)]
    assert accepted(seen)[-1].attributes["illuminance_lux"] == 18


def test_door_xiaomi_mccgq11lm() -> None:
    base = {"battery": 91, "linkquality": 87, "temperature": 22, "voltage": 2995}
    closed, opened, still, shut = sequence(
        "front_door",
        {**base, "contact": True},
        {**base, "contact": False},
        {**base, "contact": False},
        {**base, "contact": True},
    )
    assert kinds(closed.events) == []  # closed is the normal state
    assert kinds(opened.events) == [("door_open", False)]
    assert kinds(still.events) == []
    assert kinds(shut.events) == [("door_close", False)]


def test_door_as_published_with_device_information_and_last_seen() -> None:
    # Verbatim from a zigbee2mqtt 1.x log (include_device_information on, last_seen ISO_8601).
    raw = (
        b'{"battery":100,"contact":true,"device":{"applicationVersion":3,"dateCode":"20161128",'
        b'"friendlyName":"TuerSchuhkammer","hardwareVersion":2,"ieeeAddr":"0x00158d0004523108",'
        b'"manufacturerID":4151,"manufacturerName":"LUMI","model":"MCCGQ11LM","networkAddress":'
        b'53143,"powerSource":"Battery","softwareBuildID":"3000-0001","stackVersion":2,"type":'
        b'"EndDevice","zclVersion":1},"device_temperature":24,"last_seen":"2024-05-17T10:36:39.852Z"'
        b',"linkquality":76,"power_outage_count":685,"temperature":23,"trigger_count":0,'
        b'"voltage":3035}'
    )
    when = datetime(2024, 5, 17, 10, 36, 40, tzinfo=UTC)
    result = decode("zigbee2mqtt/front_door", raw, when, REGISTRY.get)
    report, heartbeat = accepted(result)
    assert isinstance(report, TelemetryReport)
    assert report.metrics == {"battery": 100, "temperature_c": 23, "linkquality": 76}
    assert isinstance(heartbeat, Heartbeat)
    assert heartbeat.occurred_at == datetime(2024, 5, 17, 10, 36, 39, 852000, tzinfo=UTC)
    assert heartbeat.attributes["device"]["model"] == "MCCGQ11LM"
    assert set(heartbeat.attributes) == {
        "device", "device_temperature", "power_outage_count", "trigger_count", "voltage",
    }  # fmt: skip
    offline = decode("zigbee2mqtt/front_door/availability", b'{"state":"offline"}', when,
                     REGISTRY.get, result.state)  # fmt: skip
    assert [type(e) for e in offline.events] == [AvailabilityChanged]


def test_smoke_xiaomi_honeywell_jtyj_gd_01lm_bw() -> None:
    base = {"battery": 100, "battery_low": False, "device_temperature": 25, "linkquality": 112,
            "power_outage_count": 4, "sensitivity": "medium", "smoke_density": 0,
            "tamper": False, "test": False, "voltage": 3055}  # fmt: skip
    test, quiet, fire, cleared = sequence(
        "kitchen/smoke",
        {**base, "smoke": False, "test": True},
        {**base, "smoke": False},
        {**base, "smoke": True, "smoke_density": 8},
        {**base, "smoke": False},
    )
    assert kinds(test.events) == [("test", False)]
    assert kinds(quiet.events) == []
    assert kinds(fire.events) == [("smoke", False)]
    assert accepted(fire)[0].attributes["smoke_density"] == 8
    assert kinds(cleared.events) == [("smoke", True)]


def test_smoke_heiman_hs1sa_with_low_battery() -> None:
    fire, low = sequence(
        "kitchen/smoke",
        {"battery": 100, "battery_low": False, "linkquality": 90, "smoke": True},
        {"battery": 8, "battery_low": True, "linkquality": 90, "smoke": True},
    )
    assert kinds(fire.events) == [("smoke", False)]
    assert kinds(low.events) == [("low_battery", False)]
    assert accepted(low)[-1].battery == 8


def test_gas_xiaomi_jtqj_bf_01lm_bw_and_heiman_hs1cg() -> None:
    xiaomi = {"gas": True, "gas_density": 18, "linkquality": 150, "sensitivity": "low",
              "tamper": False}  # fmt: skip
    heiman = {"battery_low": False, "gas": True, "tamper": False}
    for body in (xiaomi, heiman):
        (result,) = sequence("kitchen/gas", body)
        assert kinds(result.events) == [("gas", False)]
        assert isinstance(result.events[-1], Heartbeat)


def test_gas_detector_mains_loss() -> None:
    lost, back = sequence(
        "kitchen/gas",
        {"gas": False, "ac_connected": False, "battery_low": False},
        {"gas": False, "ac_connected": True, "battery_low": False},
    )
    assert kinds(lost.events) == [("power_loss", False)]
    assert kinds(back.events) == [("power_restore", False)]


def test_carbon_monoxide_heiman_hs1ca_e() -> None:
    base = {"battery": 100, "battery_low": False, "linkquality": 110}
    co, clear = sequence(
        "bedroom/co", {**base, "carbon_monoxide": True}, {**base, "carbon_monoxide": False}
    )
    assert kinds(co.events) == [("co", False)]
    assert kinds(clear.events) == [("co", True)]


def test_temperature_and_humidity_xiaomi_wsdcgq11lm() -> None:
    body = {"temperature": 22.75, "linkquality": 97, "humidity": 55.43, "pressure": 1000.6,
            "battery": 86, "voltage": 2995}  # fmt: skip
    (result,) = sequence("bedroom/climate", body)
    report = next(e for e in result.events if isinstance(e, TelemetryReport))
    assert report.metrics == {"battery": 86, "temperature_c": 22.75, "humidity": 55.43,
                              "linkquality": 97}  # fmt: skip
    assert report.attributes == {"pressure": 1000.6, "voltage": 2995}
    assert [type(e) for e in result.events] == [TelemetryReport, Heartbeat]


def test_bed_strap_occupancy_is_in_bed_tuya_ts0601_bed_presence_sensor() -> None:
    base = {"battery": 90, "illuminance": 1200, "sensitivity": "middle", "work_state": "presence"}
    lay, got_up = sequence("bed", {**base, "occupancy": True}, {**base, "occupancy": False})
    assert kinds(lay.events) == [("bed_enter", False)]
    assert kinds(got_up.events) == [("bed_exit", False)]
    # The same strap registered as a motion sensor reads as motion.
    (motion,) = sequence("hall/motion", {**base, "occupancy": True})
    assert kinds(motion.events) == [("motion", False)]


def test_radar_fall_heiman_hs2fd() -> None:
    base = {"occupancy": True, "sensor_status": "activity", "sensitivity": 1}
    warn, fall, still_low, normal = sequence(
        "radar",
        {**base, "fall_status": "fall_warning"},
        {**base, "fall_status": "fall_alarm"},
        {**base, "fall_status": "unknown"},
        {**base, "fall_status": "normal"},
    )
    assert kinds(warn.events) == [("motion", False)]
    assert accepted(warn)[0].attributes["fall_status"] == "fall_warning"  # kept, not mapped
    assert kinds(fall.events) == [("fall", False)]
    assert kinds(still_low.events) == []  # unknown does not clear a fall
    assert kinds(normal.events) == [("fall", True)]


def test_radar_fall_owon_fds315() -> None:
    base = {"breathing_rate": 14, "location_x": 120, "location_y": -40}
    walking, fall, lying, up = sequence(
        "radar",
        {**base, "status": "occupied"},
        {**base, "status": "falling"},
        {**base, "status": "low_posture"},
        {**base, "status": "sitting"},
    )
    assert kinds(walking.events) == []
    assert kinds(fall.events) == [("fall", False)]
    assert accepted(fall)[0].attributes["status"] == "falling"  # generic name: kept as well
    assert kinds(lying.events) == []
    assert kinds(up.events) == [("fall", True)]


# --- SOS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "action", "trigger"),
    [
        ("bedside_button", "single", "button"),  # Heiman HS1EB/HS1EB-E
        ("bedside_button", "double", "button"),
        ("bedside_button", "hold", "button"),
        ("pendant", "long", "button"),  # SONOFF-style single/double/long
        ("pendant", "single_left", "button"),  # with an endpoint
        ("bathroom/cord", "single", "pullcord"),
        ("front_door", "emergency", "button"),  # TuYa TS0215A_sos: any model
        ("bedroom/climate", "panic", "button"),  # IAS ACE keypad panic
        ("hall/motion", "emergency_l1", "button"),
        ("odd", "sos", "button"),
    ],
)
def test_button_presses_that_are_an_sos(name: str, action: str, trigger: str) -> None:
    result = run(name, {"action": action, "battery": 100, "linkquality": 100})
    (sos,) = sos_of(result.events)
    assert sos is result.events[0]  # an SOS comes first
    assert sos.device_id == REGISTRY[name].device_id
    assert sos.trigger == trigger
    assert sos.attributes["zigbee_action"] == action
    assert sos.battery == 100
    assert isinstance(result.events[-1], Heartbeat)


@pytest.mark.parametrize(
    ("name", "action"),
    [
        ("bedside_button", "off"),  # HS1EB: the zone cleared
        ("bedside_button", "release"),
        ("pendant", "long_release"),
        ("bedside_button", ""),  # Home Assistant's legacy empty action
        ("front_door", "single"),  # a press on a model whose button is not an emergency one
        ("odd", "double"),  # a model the catalogue does not know: no presses as SOS
    ],
)
def test_actions_that_are_not_an_sos(name: str, action: str) -> None:
    result = run(name, {"action": action, "battery": 100})
    assert sos_of(result.events) == []
    assert accepted(result)[-1].attributes["action"] == action  # kept as it came
    assert isinstance(result.events[-1], Heartbeat)


def test_a_new_action_is_always_an_event() -> None:
    # zigbee2mqtt does not cache `action`: each message with one is a new press.
    first, second = sequence("bedside_button", {"action": "single"}, {"action": "single"})
    assert len(sos_of(first.events)) == 1
    assert len(sos_of(second.events)) == 1


def test_legacy_click_is_read_like_action() -> None:
    result = run("bedside_button", {"click": "single", "battery": 90})
    assert sos_of(result.events)[0].attributes["zigbee_action"] == "single"
    both = run("bedside_button", {"action": "single", "click": "single"})
    assert len(sos_of(both.events)) == 1


def test_sos_boolean_feibit_seb01zb_alarms_on_each_press_not_on_each_message() -> None:
    base = {"battery": 95, "battery_low": False, "linkquality": 70, "tamper": False}
    press, cached, released, again = sequence(
        "pendant",
        {**base, "sos": True},
        {**base, "sos": True, "battery": 94},
        {**base, "sos": False},
        {**base, "sos": True},
    )
    (sos,) = sos_of(press.events)
    assert sos.attributes["zigbee_property"] == "sos"
    assert sos_of(cached.events) == []
    assert isinstance(released.events[-1], Heartbeat)
    assert sos_of(released.events) == []  # an SOS has no restore
    assert len(sos_of(again.events)) == 1


def test_an_emergency_boolean_is_an_sos_too() -> None:
    result = run("bedside_button", {"emergency": True})
    assert len(sos_of(result.events)) == 1


# --- unknown devices ---------------------------------------------------------------------------


def test_an_unknown_device_is_rejected() -> None:
    result = run("living/lamp", {"state": "ON", "brightness": 200, "linkquality": 40})
    (rejected,) = result.events
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "unknown zigbee device living/lamp"
    assert rejected.topic == "zigbee2mqtt/living/lamp"
    assert rejected.device_id is None


@pytest.mark.parametrize(
    "body",
    [{"action": "emergency", "battery": 60}, {"action": "sos"}, {"action": "panic"},
     {"action": "emergency_1"}, {"sos": True, "tamper": False}, {"emergency": True}],
)  # fmt: skip
def test_an_sos_from_an_unknown_device_is_never_dropped(body: dict[str, Any]) -> None:
    result = run("卫生间/紧急按钮", body)
    (sos,) = result.events
    assert isinstance(sos, SosPressed)
    assert DEVICE_ID_PATTERN.fullmatch(sos.device_id)
    assert sos.device_id == unregistered_device_id("卫生间/紧急按钮")
    assert sos.attributes["unregistered_device"] is True
    assert sos.attributes["zigbee_friendly_name"] == "卫生间/紧急按钮"


def test_a_press_from_an_unknown_device_is_not_clearly_an_sos() -> None:
    (rejected,) = run("stranger", {"action": "single"}).events
    assert isinstance(rejected, Rejected)


def test_an_unknown_sos_boolean_raises_on_each_press() -> None:
    results = sequence("stranger", {"sos": True}, {"sos": True}, {"sos": False}, {"sos": True})
    assert [type(r.events[0]) for r in results] == [SosPressed, Rejected, Rejected, SosPressed]


def test_unregistered_device_ids() -> None:
    assert unregistered_device_id("0x00158d0001a2b3c4") == "0x00158d0001a2b3c4"
    assert unregistered_device_id("bath_button-2") == "bath_button-2"
    chinese = unregistered_device_id("卫生间/紧急按钮")
    assert chinese.startswith("zigbee-")
    assert chinese != unregistered_device_id("卧室/紧急按钮")
    mixed = unregistered_device_id("home 17/bath button")
    assert mixed.startswith("home_17_bath_button-")
    for name in ("x" * 300, "a/b", "/", " ", "é" * 70):
        assert DEVICE_ID_PATTERN.fullmatch(unregistered_device_id(name)), name


# --- availability ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"),
    [('{"state":"online"}', True), ('{"state": "offline"}', False), ("online", True),
     ("offline", False), (" offline\n", False)],
)  # fmt: skip
def test_availability_modern_and_legacy(payload: str, online: bool) -> None:
    result = run("front_door", payload, suffix="/availability", retained=True)
    assert result.events == (
        AvailabilityChanged(
            device_id="door-1", received_at=NOW, occurred_at=NOW, online=online, retained=True
        ),
    )
    assert result.state == ZigbeeState(online=online)


def test_availability_reports_changes_only() -> None:
    up = run("front_door", "online", suffix="/availability")
    same = run("front_door", '{"state":"online"}', up.state, suffix="/availability")
    down = run("front_door", '{"state":"offline"}', same.state, suffix="/availability")
    assert len(up.events) == 1
    assert same.events == ()
    assert [e.online for e in down.events if isinstance(e, AvailabilityChanged)] == [False]


def test_availability_and_alarms_are_remembered_together() -> None:
    leak = run("bathroom/leak", {"water_leak": True})
    offline = run("bathroom/leak", "offline", leak.state, suffix="/availability")
    assert offline.state == ZigbeeState(active=frozenset({"water_leak"}), online=False)
    back = run("bathroom/leak", {"water_leak": True}, offline.state)
    assert kinds(back.events) == []
    assert back.state is not None
    assert back.state.online is False  # a state message says nothing about availability


@pytest.mark.parametrize("payload", ["maybe", '{"state": "ON"}', "[]", '{"online": true}'])
def test_bad_availability_is_rejected(payload: str) -> None:
    (rejected,) = run("front_door", payload, suffix="/availability").events
    assert isinstance(rejected, Rejected)
    assert "online or offline" in rejected.reason
    assert rejected.device_id == "door-1"


def test_availability_of_an_unknown_device_is_rejected() -> None:
    (rejected,) = run("living/lamp", "online", suffix="/availability").events
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "unknown zigbee device living/lamp"


def test_an_empty_message_clears_a_retained_topic() -> None:
    # zigbee2mqtt publishes an empty retained message when a device is removed or renamed.
    kept = ZigbeeState(active=frozenset({"water_leak"}), online=True)
    for suffix in ("", "/availability"):
        result = run("bathroom/leak", b"", kept, suffix=suffix)
        assert result == ZigbeeResult(friendly_name="bathroom/leak", events=(), state=None)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "unreadable JSON"),
        (b"\xff\xfe\x00", "unreadable JSON"),
        (b"[" * 5000 + b"]" * 5000, "unreadable JSON"),  # too deep for the parser
        (b"[1, 2]", "must be a JSON object"),
        (b'"online"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "payload too large"),
    ],
)
def test_bad_state_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    kept = ZigbeeState(active=frozenset({"smoke"}))
    result = run("kitchen/smoke", payload, kept)
    (rejected,) = result.events
    assert isinstance(rejected, Rejected)
    assert reason in rejected.reason
    assert rejected.device_id == "smoke-1"
    assert len(rejected.payload) <= MAX_PAYLOAD_BYTES
    assert result.state == kept  # a message that could not be read changes nothing


def test_values_of_the_wrong_kind_are_kept_not_mapped() -> None:
    body = {"smoke": "yes", "battery": 180, "temperature": True, "linkquality": "good",
            "contact": None}  # fmt: skip
    result = run("kitchen/smoke", body)
    assert [type(e) for e in result.events] == [Heartbeat]
    assert accepted(result)[0].attributes == body
    assert accepted(result)[0].battery is None


def test_kept_attributes_can_be_stored_as_sql_json() -> None:
    deep = "[" * 40 + "]" * 40
    raw = b'{"x": NaN, "y": [Infinity], "z": "a\\u0000b", "w": %s, "big": 1%s}' % (
        deep.encode(),
        b"0" * 400,
    )
    result = run("front_door", raw)
    (heartbeat,) = accepted(result)
    json.dumps(heartbeat.attributes, allow_nan=False)
    assert heartbeat.attributes["x"] == "nan"
    assert heartbeat.attributes["z"] == "a\ufffdb"


def test_battery_as_a_huge_integer_is_not_a_number() -> None:
    (heartbeat,) = accepted(run("front_door", b'{"battery": 1' + b"0" * 400 + b"}"))
    assert heartbeat.battery is None


def test_last_seen_is_when_it_happened() -> None:
    iso = run("front_door", {"contact": False, "last_seen": "2026-11-22T03:09:30.000Z"})
    assert {e.occurred_at for e in accepted(iso)} == {NOW - timedelta(seconds=30)}
    assert accepted(iso)[0].clock_skew_s == -30
    assert "last_seen" not in accepted(iso)[0].attributes
    epoch_ms = int((NOW - timedelta(seconds=5)).timestamp() * 1000)
    (beat,) = accepted(run("front_door", {"last_seen": epoch_ms}))
    assert beat.occurred_at == NOW - timedelta(seconds=5)
    (stale,) = accepted(run("front_door", {"last_seen": "2020-01-01T00:00:00Z"}))
    assert stale.occurred_at == NOW  # too far off: the receive time, with the skew recorded
    assert stale.clock_skew_s is not None
    assert stale.clock_skew_s < 0


def test_retained_state_is_marked_old_news() -> None:
    result = run("front_door", {"contact": False}, retained=True)
    assert all(e.retained for e in result.events if not isinstance(e, Rejected))


def test_a_property_absent_from_a_message_keeps_its_state() -> None:
    _, battery_only, dry = sequence(
        "bathroom/leak", {"water_leak": True}, {"battery": 50}, {"water_leak": False}
    )
    assert battery_only.state == ZigbeeState(active=frozenset({"water_leak"}))
    assert kinds(dry.events) == [("water_leak", True)]


def test_first_sight_of_a_normal_state_raises_nothing() -> None:
    (result,) = sequence(
        "kitchen/smoke",
        {"smoke": False, "tamper": False, "battery_low": False, "test": False, "contact": True},
    )
    assert [type(e) for e in result.events] == [Heartbeat]


# --- never an exception ------------------------------------------------------------------------

PROPERTIES = sorted(
    {rule.prop for rule in STATE_RULES} | set(METRICS) | {"action", "click", "last_seen"}
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["emergency", "single", "hold", "off", "fall_alarm", "falling", "online"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
names = st.sampled_from([*REGISTRY, "stranger", "卫生间/按钮", "bridge", "a/b/c"]) | st.text(
    max_size=20
)
topics = st.one_of(
    st.tuples(names, st.sampled_from(["", "/availability", "/set", "/get", "/set/state"])).map(
        lambda parts: f"zigbee2mqtt/{parts[0]}{parts[1]}"
    ),
    st.text(max_size=40).map(lambda rest: f"zigbee2mqtt/{rest}"),
    st.sampled_from(["zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/devices"]),
)
payloads = st.one_of(
    st.binary(max_size=120),
    st.sampled_from([b"online", b"offline", b'{"state":"online"}', b"", b"NaN"]),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(PROPERTIES), json_values, max_size=6).map(
        lambda v: json.dumps(v).encode()
    ),
)
states = st.none() | st.builds(
    ZigbeeState,
    active=st.frozensets(st.sampled_from(PROPERTIES), max_size=4),
    online=st.none() | st.booleans(),
)
lookups = st.dictionaries(
    st.sampled_from([*REGISTRY, "stranger"]),
    st.builds(
        ZigbeeDevice,
        device_id=st.sampled_from(["d1", "pendant-7", "Z" * 64, "0x00158d0001a2b3c4"]),
        model=st.sampled_from([*CATALOGUE, "unknown-model"]),
    ),
)
ALLOWED = (Heartbeat, SosPressed, SensorEvent, TelemetryReport, AvailabilityChanged, Rejected)
EXAMPLES = 700


@settings(max_examples=EXAMPLES, deadline=None)
@given(topic=topics, payload=payloads, previous=states, registry=lookups, retained=st.booleans())
def test_any_bytes_on_any_zigbee_topic_give_events_or_a_rejection(
    topic: str,
    payload: bytes,
    previous: ZigbeeState | None,
    registry: dict[str, ZigbeeDevice],
    retained: bool,
) -> None:
    result = decode(topic, payload, NOW, registry.get, previous, retained=retained)
    assert isinstance(result, ZigbeeResult)
    assert result.state is None or isinstance(result.state, ZigbeeState)
    if result.friendly_name is None:
        assert result.events == ()
    for event in result.events:
        assert isinstance(event, ALLOWED)
        if isinstance(event, Rejected):
            assert len(result.events) == 1
            assert event.reason
            continue
        assert DEVICE_ID_PATTERN.fullmatch(event.device_id)
        assert event.received_at == NOW
        json.dumps(event.attributes, allow_nan=False)  # what is kept can be stored
        if isinstance(event, TelemetryReport):
            json.dumps(event.metrics, allow_nan=False)
    parsed = parse_topic(topic)
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        body = None
    says_sos = isinstance(body, dict) and body.get("action") in ("emergency", "sos", "panic")
    if parsed is not None and parsed.kind is TopicKind.STATE and says_sos:
        assert len(payload) > MAX_PAYLOAD_BYTES or sos_of(result.events)  # never dropped
