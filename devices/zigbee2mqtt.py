"""The Zigbee2MQTT adapter: what a Zigbee2MQTT bridge publishes, as anxin's events. No I/O.

Zigbee2MQTT publishes ``{base}/{friendly_name}`` (a JSON object: the device's *whole* cached state
on every message) and ``{base}/{friendly_name}/availability`` (``{"state": "online"}``, or plain
``online`` / ``offline`` with ``legacy_availability_payload``). Because the whole state comes
every time, an alarm property that stays ``true`` must not raise again on every message: the
decoder is given what it remembered of the device (a :class:`ZigbeeState`) and returns what to
remember next, with the events of the *changes* only::

    topic = parse_topic(message.topic)            # None: not a device topic, nothing to do
    result = decode(message.topic, message.payload, received_at, lookup,
                    previous=states.get(topic.friendly_name) if topic else None)
    if result.friendly_name is not None:
        states[result.friendly_name] = result.state   # None: forget this name

``lookup`` maps a friendly name to the registered device (``ZigbeeDevice``) or None. The tables
below say which property becomes which event (style.md item 7).

What is an event:

- a state property (``water_leak``, ``smoke``, ``contact`` …; :data:`STATE_RULES`) that *changes*
  raises its event; before anything is remembered a property counts as in its normal state, so
  the first ``{"smoke": true}`` raises ``smoke`` and the first ``{"smoke": false}`` raises
  nothing; a clear after an alarm raises the restore.
- ``action`` (not cached by Zigbee2MQTT: present only on the message of the press itself) is
  an event every time: ``emergency`` / ``sos`` / ``panic`` is an SOS from any device, and
  ``single`` / ``double`` / ``hold`` … is an SOS from a model whose every press is one
  (``sos-button``, ``sos-pendant``, ``pull-cord``: ``press_means_sos`` in the catalogue).
- ``battery``, ``temperature``, ``humidity``, ``linkquality`` become a :class:`TelemetryReport`.
- every state message of a registered device is a :class:`Heartbeat` (proof of life).
- the properties not mapped are kept, as they came, in ``attributes``.

An SOS is never dropped: a message that clearly says SOS from a friendly name nobody registered
still gives a :class:`SosPressed`, on a device id made from the name, marked
``unregistered_device``. Every other message of an unknown name is rejected.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from devices.catalogue import CATALOGUE, Catalogue, DeviceModel
from devices.contact_id import SOS
from devices.events import (
    AvailabilityChanged,
    Decoded,
    Heartbeat,
    Rejected,
    SensorEvent,
    SosPressed,
    TelemetryReport,
)
from devices.payloads import MAX_PAYLOAD_BYTES
from devices.storable import storable, storable_text
from devices.timestamps import event_time
from devices.topics import DEVICE_ID_PATTERN

DEFAULT_BASE_TOPIC = "zigbee2mqtt"

# Zigbee2MQTT's own topics under ``{base}/bridge/``: its state, logs, requests and responses.
_BRIDGE_TOPICS = frozenset(
    {
        "state", "info", "devices", "groups", "definitions", "extensions", "event", "logging",
        "log", "config", "options", "request", "response", "networkmap", "converters",
        "health", "backup", "permit_join",
    }
)  # fmt: skip
_COMMAND_TOPICS = frozenset({"set", "get"})

UNREGISTERED = "unregistered_device"
FRIENDLY_NAME = "zigbee_friendly_name"


class TopicKind(StrEnum):
    STATE = "state"
    AVAILABILITY = "availability"


@dataclass(frozen=True, kw_only=True, slots=True)
class ZigbeeTopic:
    friendly_name: str
    kind: TopicKind


@dataclass(frozen=True, kw_only=True, slots=True)
class ZigbeeDevice:
    """A registered device as the adapter needs it: its id and its catalogue model."""

    device_id: str
    model: str


DeviceLookup = Callable[[str], ZigbeeDevice | None]


@dataclass(frozen=True, kw_only=True, slots=True)
class ZigbeeState:
    """What the adapter remembers of one friendly name between two messages."""

    # State properties (:data:`STATE_RULES`) last seen in their alarm / non-normal value.
    active: frozenset[str] = frozenset()
    # Last availability published; None before any.
    online: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ZigbeeResult:
    """The events of one message, and what to remember of its friendly name afterwards."""

    # None: not a device topic (bridge, /set, /get, another base): ignored, nothing to keep.
    friendly_name: str | None
    events: tuple[Decoded, ...] = ()
    # The state to keep for ``friendly_name``; None: nothing worth keeping, forget the name.
    state: ZigbeeState | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """The event a state property's change raises; ``type`` SOS raises an SOS."""

    type: str
    restore: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class StateRule:
    """A property of the published state whose changes are events."""

    prop: str
    # The values that mean "active" (alarm, open, present …): JSON booleans, or strings for an
    # enum property. Values of another kind are not read.
    active: frozenset[bool] | frozenset[str]
    on_active: Change | None
    on_clear: Change | None = None
    # The values that mean normal; None: every other value of the same kind. A value in
    # neither (an enum's ``fall_warning``) tells nothing: the last state stands.
    normal: frozenset[str] | None = None
    # Also keep the raw value in attributes (a generic property only partly understood).
    keep_raw: bool = False

    def reads(self, value: object) -> bool | None:
        """True active, False normal, None: nothing this rule can read."""
        if all(isinstance(item, bool) for item in self.active):
            return value in self.active if isinstance(value, bool) else None
        if not isinstance(value, str):
            return None
        if value in self.active:
            return True
        return False if self.normal is None or value in self.normal else None


def _alarm(prop: str, event_type: str) -> StateRule:
    return StateRule(
        prop=prop,
        active=frozenset({True}),
        on_active=Change(type=event_type),
        on_clear=Change(type=event_type, restore=True),
    )


# Documented exposes of zigbee2mqtt device definitions (see docs/devices.md for the models).
STATE_RULES: tuple[StateRule, ...] = (
    _alarm("water_leak", "water_leak"),
    _alarm("smoke", "smoke"),
    _alarm("gas", "gas"),
    _alarm("carbon_monoxide", "co"),
    _alarm("tamper", "tamper"),
    _alarm("battery_low", "low_battery"),
    # contact: true = closed. Open and close are two event types, not alarm and restore.
    StateRule(
        prop="contact",
        active=frozenset({False}),
        on_active=Change(type="door_open"),
        on_clear=Change(type="door_close"),
    ),
    _alarm("occupancy", "motion"),
    # IAS zone "test" bit (Heiman, Xiaomi smoke): the detector's test button was pressed.
    StateRule(prop="test", active=frozenset({True}), on_active=Change(type="test")),
    # IAS zone mains bit (Heiman combined CO/gas converter): false = running on battery.
    StateRule(
        prop="ac_connected",
        active=frozenset({False}),
        on_active=Change(type="power_loss"),
        on_clear=Change(type="power_restore"),
    ),
    # Emergency buttons that expose a boolean (Feibit SEB01ZB ``sos``).
    StateRule(prop="sos", active=frozenset({True}), on_active=Change(type=SOS)),
    StateRule(prop="emergency", active=frozenset({True}), on_active=Change(type=SOS)),
    # Radar fall detectors: Heiman HS2FD ``fall_status``, OWON FDS315 ``status``.
    # A warning, or a person still low after the fall, does not clear it.
    StateRule(
        prop="fall_status",
        active=frozenset({"fall_alarm"}),
        on_active=Change(type="fall"),
        on_clear=Change(type="fall", restore=True),
        normal=frozenset({"normal"}),
    ),
    StateRule(
        prop="status",
        active=frozenset({"falling"}),
        on_active=Change(type="fall"),
        on_clear=Change(type="fall", restore=True),
        normal=frozenset({"unoccupied", "occupied", "sitting", "on_the_bed"}),
        keep_raw=True,
    ),
)

# What a property means on a particular catalogue model, in place of the rule above.
MODEL_RULES: Mapping[str, tuple[StateRule, ...]] = {
    # A bed strap's occupancy is someone lying in bed (Tuya TS0601_bed_presence_sensor).
    "bed-sensor": (
        StateRule(
            prop="occupancy",
            active=frozenset({True}),
            on_active=Change(type="bed_enter"),
            on_clear=Change(type="bed_exit"),
        ),
    ),
}

_DEFAULT_RULES: Mapping[str, StateRule] = {rule.prop: rule for rule in STATE_RULES}

# Numeric properties that become telemetry: property → (metric, lowest, highest accepted).
METRICS: Mapping[str, tuple[str, float, float]] = {
    "battery": ("battery", 0, 100),
    "temperature": ("temperature_c", -100, 200),
    "humidity": ("humidity", 0, 100),
    "linkquality": ("linkquality", 0, 255),
}

# ``action`` values that are an SOS from any device: IAS ACE ``emergency`` (TuYa TS0215A_sos,
# Heiman remotes) and ``panic`` (keypads), and ``sos``. Zigbee2MQTT may add an endpoint
# (``emergency_l1``).
SOS_ACTIONS = frozenset({"emergency", "sos", "panic"})
# ``action`` values that are a press of a button: an SOS on a ``press_means_sos`` model.
PRESS_ACTIONS = frozenset(
    {"single", "double", "triple", "quadruple", "many", "hold", "long", "press", "long_press"}
)
ACTION_PROPERTIES = ("action", "click")  # ``click``: the legacy name of ``action``


def parse_topic(topic: str, base_topic: str = DEFAULT_BASE_TOPIC) -> ZigbeeTopic | None:
    """``{base}/{friendly_name}[/availability]`` → its parts; None for any other topic.

    Friendly names may contain ``/``. Zigbee2MQTT's own ``{base}/bridge/…`` topics and the
    ``/set`` and ``/get`` command topics are not device publications: None.
    """
    head, sep, rest = topic.partition(base_topic + "/")
    if head or not sep or not rest:
        return None
    parts = rest.split("/")
    if parts[0] == "bridge":
        return None
    # A base topic nested per home (``zigbee2mqtt/home-17/bridge/state``) under this one.
    for index, part in enumerate(parts[:-1]):
        if part == "bridge" and parts[index + 1] in _BRIDGE_TOPICS:
            return None
    if parts[-1] in _COMMAND_TOPICS or (len(parts) > 1 and parts[-2] in _COMMAND_TOPICS):
        return None
    if parts[-1] == "availability":
        name = "/".join(parts[:-1])
        return ZigbeeTopic(friendly_name=name, kind=TopicKind.AVAILABILITY) if name else None
    return ZigbeeTopic(friendly_name=rest, kind=TopicKind.STATE)


def subscription(base_topic: str = DEFAULT_BASE_TOPIC) -> str:
    """The one filter that receives every device's state and availability."""
    return f"{base_topic}/#"


def unregistered_device_id(friendly_name: str) -> str:
    """A device id (``[A-Za-z0-9_-]{1,64}``) for a friendly name nobody registered.

    A name that is already a valid id is kept; any other is cleaned and given a short hash of
    the name, so two names practically never share an id (``卫生间/按钮`` → ``zigbee-c36bf2a7``).
    """
    if DEVICE_ID_PATTERN.fullmatch(friendly_name):
        return friendly_name
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", friendly_name).strip("_-")[:55]
    digest = hashlib.sha256(friendly_name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'zigbee'}-{digest}"


def decode(
    topic: str,
    payload: bytes,
    received_at: datetime,
    lookup: DeviceLookup,
    previous: ZigbeeState | None = None,
    *,
    retained: bool = False,
    base_topic: str = DEFAULT_BASE_TOPIC,
    catalogue: Catalogue = CATALOGUE,
) -> ZigbeeResult:
    """Decode one Zigbee2MQTT publication. Pure: same input, same output.

    ``previous`` is what the last result said to remember for this topic's friendly name
    (None before any). ``received_at`` is an aware UTC datetime; ``retained`` marks a message
    the broker replayed.
    """
    parsed = parse_topic(topic, base_topic)
    if parsed is None:
        return ZigbeeResult(friendly_name=None)
    name = parsed.friendly_name
    if not payload:
        # Zigbee2MQTT clears a retained topic with an empty message when a device is removed or
        # renamed: nothing happened, and nothing is left to remember.
        return ZigbeeResult(friendly_name=name, state=None)
    device = lookup(name)
    if parsed.kind is TopicKind.AVAILABILITY:
        return _availability(topic, payload, received_at, name, device, previous, retained)
    model = catalogue.get(device.model) if device is not None else None
    return _state(topic, payload, received_at, name, device, model, previous, retained)


def _availability(
    topic: str,
    payload: bytes,
    received_at: datetime,
    name: str,
    device: ZigbeeDevice | None,
    previous: ZigbeeState | None,
    retained: bool,
) -> ZigbeeResult:
    online = _read_availability(payload)
    if online is None:
        reason = 'availability must be online or offline (plain, or {"state": …})'
        device_id = device.device_id if device else None
        return _rejected(topic, payload, reason, received_at, device_id, name, previous)
    if device is None:
        return _rejected(topic, payload, _unknown(name), received_at, None, name, previous)
    before = previous or ZigbeeState()
    state = ZigbeeState(active=before.active, online=online)
    if before.online == online:
        return ZigbeeResult(friendly_name=name, state=_kept(state))
    event = AvailabilityChanged(
        device_id=device.device_id,
        received_at=received_at,
        occurred_at=received_at,
        online=online,
        retained=retained,
    )
    return ZigbeeResult(friendly_name=name, events=(event,), state=_kept(state))


def _read_availability(payload: bytes) -> bool | None:
    text = payload.strip().lower()
    if text in (b"online", b"offline"):
        return text == b"online"
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None
    state = body.get("state") if isinstance(body, dict) else None
    if state in ("online", "offline"):
        return bool(state == "online")
    return None


@dataclass(kw_only=True, slots=True)
class _Reading:
    """What one state message says, before it becomes events."""

    changes: list[tuple[StateRule, bool, object]] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    sos: dict[str, Any] | None = None  # what made it an SOS, for the alert's attributes
    metrics: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    clock_skew_s: float | None = None


def _state(
    topic: str,
    payload: bytes,
    received_at: datetime,
    name: str,
    device: ZigbeeDevice | None,
    model: DeviceModel | None,
    previous: ZigbeeState | None,
    retained: bool,
) -> ZigbeeResult:
    device_id = device.device_id if device else None
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _rejected(
            topic, payload, "payload too large", received_at, device_id, name, previous
        )
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        reason = f"unreadable JSON: {exc}"[:200]
        return _rejected(topic, payload, reason, received_at, device_id, name, previous)
    if not isinstance(body, dict):
        reason = "zigbee2mqtt state must be a JSON object"
        return _rejected(topic, payload, reason, received_at, device_id, name, previous)
    before = previous or ZigbeeState()
    reading = _read(body, model, before, received_at)
    state = ZigbeeState(active=frozenset(reading.active), online=before.online)
    if device is None:
        if reading.sos is None:
            # Remember even so: a later SOS must be seen as a change.
            reason = _unknown(name)
            return _rejected(topic, payload, reason, received_at, None, name, _kept(state))
        # An SOS is never dropped, even from a name nobody registered.
        common = _common(unregistered_device_id(name), reading, received_at, retained)
        marks = {**reading.sos, UNREGISTERED: True, FRIENDLY_NAME: name}
        common["attributes"] = {**common["attributes"], **marks}
        sos = SosPressed(**common, trigger="button")
        return ZigbeeResult(friendly_name=name, events=(sos,), state=_kept(state))
    return ZigbeeResult(
        friendly_name=name,
        events=tuple(_events(device, model, reading, received_at, retained)),
        state=_kept(state),
    )


def _read(
    body: dict[str, Any], model: DeviceModel | None, before: ZigbeeState, received_at: datetime
) -> _Reading:
    reading = _Reading()
    used: set[str] = set()
    rules = _DEFAULT_RULES
    if model is not None and model.name in MODEL_RULES:
        rules = {**rules, **{rule.prop: rule for rule in MODEL_RULES[model.name]}}
    for prop, rule in rules.items():
        was = prop in before.active
        now = rule.reads(body[prop]) if prop in body else None
        if now is None:  # absent, or not a value of this property: nothing new is known
            if was:
                reading.active.add(prop)
            continue
        if not rule.keep_raw:
            used.add(prop)
        if now:
            reading.active.add(prop)
        if now != was:
            reading.changes.append((rule, now, body[prop]))
            change = rule.on_active if now else rule.on_clear
            if change is not None and change.type == SOS and reading.sos is None:
                reading.sos = {"zigbee_property": prop}
    for prop in ACTION_PROPERTIES:
        action = body.get(prop)
        if isinstance(action, str) and action and _is_sos_action(action, model):
            used.add(prop)
            if reading.sos is None or "zigbee_property" in reading.sos:
                reading.sos = {"zigbee_action": action}
            break
    for prop, (metric, lowest, highest) in METRICS.items():
        number = _number(body.get(prop))
        if number is not None and lowest <= number <= highest:
            reading.metrics[metric] = number
            used.add(prop)
    if "last_seen" in body:
        when = _device_time(body["last_seen"], received_at)
        if when is not None:
            reading.occurred_at, reading.clock_skew_s = when
            used.add("last_seen")
    reading.attributes = {
        storable_text(key): storable(value) for key, value in body.items() if key not in used
    }
    return reading


def _is_sos_action(action: str, model: DeviceModel | None) -> bool:
    value = action.strip().lower()
    if value == "release" or value.endswith("_release"):
        return False
    # Zigbee2MQTT names an action of a multi-endpoint device ``{action}_{endpoint}``.
    first = value.split("_", 1)[0]
    if value in SOS_ACTIONS or first in SOS_ACTIONS:
        return True
    press = value in PRESS_ACTIONS or first in PRESS_ACTIONS
    return press and model is not None and model.press_means_sos


def _events(
    device: ZigbeeDevice,
    model: DeviceModel | None,
    reading: _Reading,
    received_at: datetime,
    retained: bool,
) -> list[Decoded]:
    common = _common(device.device_id, reading, received_at, retained)
    events: list[Decoded] = []
    if reading.sos is not None:
        trigger = (model.sos_trigger if model else None) or "button"
        attributes = {**common["attributes"], **reading.sos}
        events.append(SosPressed(**{**common, "attributes": attributes}, trigger=trigger))
    for rule, now, value in reading.changes:
        change = rule.on_active if now else rule.on_clear
        if change is None or change.type == SOS:
            continue
        events.append(
            SensorEvent(
                **common,
                type=change.type,
                restore=change.restore,
                value=storable(value) if isinstance(value, bool | str) else None,
            )
        )
    if reading.metrics:
        events.append(TelemetryReport(**common, metrics=dict(reading.metrics)))
    events.append(Heartbeat(**common))
    return events


def _common(
    device_id: str, reading: _Reading, received_at: datetime, retained: bool
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "received_at": received_at,
        "occurred_at": reading.occurred_at or received_at,
        "clock_skew_s": reading.clock_skew_s,
        "battery": reading.metrics.get("battery"),
        "attributes": dict(reading.attributes),
        "retained": retained,
    }


def _device_time(value: object, received_at: datetime) -> tuple[datetime, float | None] | None:
    """``last_seen`` (ISO 8601 or epoch milliseconds) → when it happened, and the skew."""
    if isinstance(value, str):
        ts: float | str = value
    else:
        number = _number(value)
        if number is None:
            return None
        ts = number
    try:
        when = event_time(ts, received_at)
    except (OverflowError, ValueError):
        return None
    return when.occurred_at, when.skew_s


def _number(value: object) -> float | None:
    """A finite JSON number as a float; None for anything else (``true`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _kept(state: ZigbeeState) -> ZigbeeState | None:
    """None for a state that says nothing (no need to keep one per friendly name)."""
    return state if state.active or state.online is not None else None


def _unknown(name: str) -> str:
    return f"unknown zigbee device {name}"


def _rejected(
    topic: str,
    payload: bytes,
    reason: str,
    received_at: datetime,
    device_id: str | None,
    name: str,
    state: ZigbeeState | None,
) -> ZigbeeResult:
    """A rejection; ``state`` is what to keep (usually what was kept before)."""
    rejected = Rejected(
        topic=topic,
        payload=payload[:MAX_PAYLOAD_BYTES],
        reason=reason,
        received_at=received_at,
        device_id=device_id,
    )
    return ZigbeeResult(friendly_name=name, events=(rejected,), state=state)
