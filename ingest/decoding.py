"""Which adapter reads a delivery: the native JSON codec or the Zigbee2MQTT one, by topic.

Zigbee2MQTT publishes whole states, so its adapter needs the last state of each friendly name
to report changes only. That memory lives here, and changes only once the batch that read it
is committed (``commit``): a batch that is retried must see the same previous states again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from devices import zigbee2mqtt
from devices.catalogue import CATALOGUE, Catalogue
from devices.codec import NativeCodec
from devices.events import Decoded
from devices.topics import parse_uplink, uplink_filters
from devices.zigbee2mqtt import ZigbeeDevice, ZigbeeState
from ingest.mqtt import Delivery


@dataclass(kw_only=True, slots=True)
class BatchDecoding:
    """The events of each delivery, and the Zigbee2MQTT memory to keep if the batch commits."""

    events: list[tuple[Decoded, ...]] = field(default_factory=list)
    zigbee_states: dict[str, ZigbeeState | None] = field(default_factory=dict)


class MessageDecoder:
    def __init__(
        self,
        *,
        native: NativeCodec,
        zigbee_base_topic: str | None = zigbee2mqtt.DEFAULT_BASE_TOPIC,
        catalogue: Catalogue = CATALOGUE,
    ) -> None:
        self._native, self._zigbee_base, self._catalogue = native, zigbee_base_topic, catalogue
        # What every Zigbee2MQTT topic starts with ("" when there is none to read).
        self._zigbee_head = f"{zigbee_base_topic}/" if zigbee_base_topic else ""
        self._zigbee_states: dict[str, ZigbeeState] = {}
        self._remembered: Mapping[str, ZigbeeState] | None = None

    @property
    def prefix(self) -> str:
        return self._native.prefix

    def subscriptions(self) -> list[str]:
        filters = uplink_filters(self._native.prefix)
        if self._zigbee_base:
            filters.append(zigbee2mqtt.subscription(self._zigbee_base))
        return filters

    def label(self, topic: str) -> str:
        """A metric label for a topic: the uplink kind, ``zigbee2mqtt``, or ``unknown`` —
        never a device's name, so the number of series does not grow with the fleet."""
        parsed = parse_uplink(topic, self._native.prefix)
        if parsed is not None:
            return parsed.kind.value
        if self._zigbee_base and topic.startswith(self._zigbee_base + "/"):
            return "zigbee2mqtt"
        return "unknown"

    def zigbee_names(self, deliveries: Sequence[Delivery]) -> set[str]:
        """The friendly names a batch speaks of, to look them up in the registry at once."""
        if not self._zigbee_base:
            return set()
        names, head = set(), self._zigbee_head
        for delivery in deliveries:
            if not delivery.topic.startswith(head):
                continue  # a native topic: no need to parse it
            parsed = zigbee2mqtt.parse_topic(delivery.topic, self._zigbee_base)
            if parsed is not None:
                names.add(parsed.friendly_name)
        return names

    def decode(
        self,
        deliveries: Sequence[Delivery],
        zigbee_devices: Mapping[str, ZigbeeDevice],
        remembered: Mapping[str, ZigbeeState] | None = None,
    ) -> BatchDecoding:
        """``remembered``: the states stored for the batch's names (ingest/zigbee_memory.py),
        shared by every ingest member; without it, this process's own memory."""
        result = BatchDecoding()
        self._remembered = remembered
        lookup: Callable[[str], ZigbeeDevice | None] = zigbee_devices.get
        head, base = self._zigbee_head, self._zigbee_base
        for delivery in deliveries:
            if base and delivery.topic.startswith(head):
                previous = self._previous_state(delivery.topic, result)
                decoded = zigbee2mqtt.decode(
                    delivery.topic,
                    delivery.payload,
                    delivery.received_at,
                    lookup,
                    previous,
                    retained=delivery.retain,
                    base_topic=base,
                    catalogue=self._catalogue,
                )
                if decoded.friendly_name is not None:
                    result.zigbee_states[decoded.friendly_name] = decoded.state
                result.events.append(decoded.events)
                continue
            result.events.append(
                (
                    self._native.decode(
                        delivery.topic, delivery.payload, delivery.received_at, delivery.retain
                    ),
                )
            )
        return result

    def _previous_state(self, topic: str, pending: BatchDecoding) -> ZigbeeState | None:
        """The state this batch left for the name, else the one committed before it."""
        parsed = zigbee2mqtt.parse_topic(topic, self._zigbee_base or "")
        if parsed is None:
            return None
        name = parsed.friendly_name
        if name in pending.zigbee_states:
            return pending.zigbee_states[name]
        if self._remembered is not None and name in self._remembered:
            return self._remembered[name]
        return self._zigbee_states.get(name)

    def commit(self, decoding: BatchDecoding) -> None:
        """The batch is stored: remember its Zigbee2MQTT states."""
        for name, state in decoding.zigbee_states.items():
            if state is None:
                self._zigbee_states.pop(name, None)
            else:
                self._zigbee_states[name] = state
