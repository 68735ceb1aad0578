"""Telling a device where its call stands, and commanding it: the API's port to the broker.

The API does not make its own broker connection; the composition root hands it one. ``anxin
serve`` and ``anxin demo`` share ingest's connection; ``anxin api`` gets a small publish-only
one of its own (``ingest.publisher``), which waits for the broker's PUBACK. Either way a send
raises when the broker is not connected, rather than queueing for a reconnect that may never
come: an Ack not sent is recorded in the alert's timeline (``device_not_told``), a Command not
sent is answered 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from devices.payloads import AckPayload, CommandPayload
from devices.topics import DEFAULT_PREFIX, Downlink, downlink_topic

# publish(topic, payload, qos): what an MQTT client offers.
Publish = Callable[[str, bytes, int], None]


class DownlinkUnavailableError(ConnectionError):
    """No broker connection now."""


class DeviceDownlink(Protocol):
    def send_ack(self, device_id: str, ack: AckPayload) -> None:
        """Hand the Ack to the broker (QoS 1); raises if it cannot."""

    def send_command(self, device_id: str, command: CommandPayload) -> None:
        """Hand the Command to the broker (QoS 1); raises if it cannot."""


class MqttDownlink:
    """Acks on ``{prefix}/{device_id}/ack`` and Commands on ``{prefix}/{device_id}/cmd``, QoS 1,
    not retained (contract §1). ``connected``: whether the connection is up now; a send while
    it is down raises DownlinkUnavailableError."""

    def __init__(
        self,
        publish: Publish,
        topic_prefix: str = DEFAULT_PREFIX,
        connected: Callable[[], bool] = lambda: True,
    ) -> None:
        self._publish, self._prefix, self._connected = publish, topic_prefix, connected

    def send_ack(self, device_id: str, ack: AckPayload) -> None:
        self._send(device_id, Downlink.ACK, ack.model_dump_json(exclude_none=True).encode())

    def send_command(self, device_id: str, command: CommandPayload) -> None:
        self._send(device_id, Downlink.CMD, command.model_dump_json().encode())

    def _send(self, device_id: str, kind: Downlink, payload: bytes) -> None:
        if not self._connected():
            raise DownlinkUnavailableError("not connected to the broker")
        self._publish(downlink_topic(device_id, kind, self._prefix), payload, 1)
