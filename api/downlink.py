"""Telling a device where its call stands: the API's port to the broker.

The API does not own a broker connection; the composition root hands it one (``anxin serve``
and ``anxin demo`` share ingest's connection). A process without one (``anxin api`` today)
answers dispatchers' actions anyway and records in the alert's timeline that the device was
not told.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from devices.payloads import AckPayload
from devices.topics import DEFAULT_PREFIX, Downlink, downlink_topic

# publish(topic, payload, qos): what an MQTT client offers.
Publish = Callable[[str, bytes, int], None]


class DeviceDownlink(Protocol):
    def send_ack(self, device_id: str, ack: AckPayload) -> None:
        """Hand the Ack to the broker (QoS 1); raises if it cannot."""


class MqttDownlink:
    """Acks on ``{prefix}/{device_id}/ack``, QoS 1, not retained (contract §1)."""

    def __init__(self, publish: Publish, topic_prefix: str = DEFAULT_PREFIX) -> None:
        self._publish, self._prefix = publish, topic_prefix

    def send_ack(self, device_id: str, ack: AckPayload) -> None:
        topic = downlink_topic(device_id, Downlink.ACK, self._prefix)
        self._publish(topic, ack.model_dump_json().encode(), 1)
