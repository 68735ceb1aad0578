"""A virtual Zigbee device as Zigbee2MQTT publishes it, from the adapter's own tables.

The Zigbee2MQTT adapter (devices/zigbee2mqtt.py) reads a state property's change as an event
by :data:`~devices.zigbee2mqtt.STATE_RULES` and :data:`~devices.zigbee2mqtt.MODEL_RULES`; here
the same rules are read backwards: which property, set to which value, says ``door_open``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from devices.topics import Uplink
from devices.zigbee2mqtt import MODEL_RULES, STATE_RULES, Change, StateRule
from simulators.behaviours import Emission

# Telemetry metric → the Zigbee2MQTT property that carries it.
METRIC_PROPERTIES = {"temperature_c": "temperature", "humidity": "humidity"}


@lru_cache(maxsize=256)
def property_for(model: str, event_type: str, restore: bool) -> tuple[str, Any] | None:
    """The state property and value that the adapter reads as this event, for this model."""
    rules: dict[str, StateRule] = {rule.prop: rule for rule in STATE_RULES}
    rules.update({rule.prop: rule for rule in MODEL_RULES.get(model, ())})
    wanted = Change(type=event_type, restore=restore)
    for rule in rules.values():
        if rule.on_active == wanted:
            return rule.prop, sorted(rule.active, key=str)[0]
        if rule.on_clear == wanted:
            return rule.prop, _normal(rule)
    return None


def _normal(rule: StateRule) -> Any:
    if all(isinstance(value, bool) for value in rule.active):
        return not next(iter(rule.active))
    return sorted(rule.normal)[0] if rule.normal else None


class ZigbeeState:
    """What Zigbee2MQTT has cached for one device: it publishes all of it every time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.state: dict[str, Any] = {}

    def payload(self, emission: Emission, ts: datetime) -> bytes | None:
        """The state message for the emission; None when Zigbee2MQTT has no way to say it."""
        body = emission.body
        extra: dict[str, Any] = {}
        if emission.kind is Uplink.EVENT:
            found = property_for(self.model, str(body.get("type")), body.get("state") == "restore")
            if found is None:
                return None
            prop, value = found
            self.state[prop] = value
        elif emission.kind is Uplink.TELEMETRY:
            metrics: Mapping[str, Any] = body.get("metrics", {})
            for metric, prop in METRIC_PROPERTIES.items():
                if metric in metrics:
                    self.state[prop] = metrics[metric]
        elif emission.kind is Uplink.SOS:
            extra["action"] = "emergency"  # not cached: only in the message of the press
        if "battery" in body:
            self.state["battery"] = body["battery"]
        if "rssi" in body:
            self.state["linkquality"] = max(0, min(255, 255 + 2 * int(body["rssi"])))
        message = {**self.state, **extra, "last_seen": ts.isoformat(timespec="milliseconds")}
        return json.dumps(message, separators=(",", ":")).encode()


def availability(online: bool) -> bytes:
    return b'{"state":"online"}' if online else b'{"state":"offline"}'
