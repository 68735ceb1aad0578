"""The MQTT topic grammar of contract §1, as pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PREFIX = "anxin/v1"
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Uplink(StrEnum):
    """What a device publishes, by the last topic level."""

    HEARTBEAT = "heartbeat"
    SOS = "sos"
    EVENT = "event"
    TELEMETRY = "telemetry"
    STATUS = "status"


class Downlink(StrEnum):
    """What the platform publishes to a device."""

    ACK = "ack"
    CMD = "cmd"


# Looked up by value without the enum's call (a dict lookup: a message's topic is parsed once
# or twice on the ingest path).
_UPLINKS = {kind.value: kind for kind in Uplink}


# Not frozen: one is made per message, and a frozen dataclass's __init__ costs three times as
# much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class UplinkTopic:
    device_id: str
    kind: Uplink


def parse_uplink(topic: str, prefix: str = DEFAULT_PREFIX) -> UplinkTopic | None:
    """``anxin/v1/{device_id}/{kind}`` → its parts; None for any other topic."""
    head, sep, rest = topic.partition(prefix + "/")
    if head or not sep:
        return None
    device_id, sep, kind = rest.partition("/")
    uplink = _UPLINKS.get(kind)
    if uplink is None or not sep or not DEVICE_ID_PATTERN.fullmatch(device_id):
        return None
    return UplinkTopic(device_id=device_id, kind=uplink)


def uplink_filters(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The subscriptions the platform needs, one per uplink kind (downlinks excluded)."""
    return [f"{prefix}/+/{kind.value}" for kind in Uplink]


def downlink_topic(device_id: str, kind: Downlink, prefix: str = DEFAULT_PREFIX) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise ValueError(f"not a device id: {device_id!r}")
    return f"{prefix}/{device_id}/{kind.value}"


def uplink_topic(device_id: str, kind: Uplink, prefix: str = DEFAULT_PREFIX) -> str:
    if not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise ValueError(f"not a device id: {device_id!r}")
    return f"{prefix}/{device_id}/{kind.value}"
