"""Pydantic models of the JSON payloads of contract §1, one per payload."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

MAX_PAYLOAD_BYTES = 16 * 1024

# A JSON number and nothing else: `true` or "85" is not a battery level.
Number = StrictFloat | StrictInt


class Uplink(BaseModel):
    """Fields every uplink may carry; unknown extra fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    ts: Number | str | None = None
    # A 64-bit counter at most: what SQL stores (BIGINT) and any firmware sends.
    seq: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] | None = None
    battery: Annotated[Number, Field(ge=0, le=100)] | None = None
    rssi: Number | None = None


class HeartbeatPayload(Uplink):
    """``{}`` is a valid heartbeat."""


class GeoLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    lat: Annotated[Number, Field(ge=-90, le=90)]
    lon: Annotated[Number, Field(ge=-180, le=180)]
    accuracy_m: Annotated[Number, Field(ge=0)] | None = None


class RoomLocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    room: Annotated[str, Field(max_length=128)]


class SosTrigger(StrEnum):
    BUTTON = "button"
    PULLCORD = "pullcord"
    VOICE = "voice"
    WATCH = "watch"


class SosPayload(Uplink):
    """An empty payload is a valid SOS."""

    location: GeoLocation | RoomLocation | None = None
    trigger: SosTrigger | None = None


class EventState(StrEnum):
    ALARM = "alarm"
    RESTORE = "restore"


class EventPayload(Uplink):
    """A sensor or device event; ``cid`` (Contact ID) may stand in for ``type``/``state``."""

    type: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    state: EventState = EventState.ALARM
    zone: str | int | None = None
    value: Number | str | bool | None = None
    cid: Annotated[str, Field(pattern=r"^[136]\d{3}$")] | None = None
    # A gateway that could not translate what its device sent (an unknown DC-09 event code)
    # publishes it with this reason: ingest keeps the message as a dead letter for an engineer.
    dead_letter: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class TelemetryPayload(Uplink):
    metrics: dict[Annotated[str, Field(max_length=64)], Number]


class AckStatus(StrEnum):
    RECEIVED = "received"
    CLAIMED = "claimed"
    HELP_COMING = "help_coming"
    RESOLVED = "resolved"


class AckPayload(BaseModel):
    """Downlink: tells the device (and so the elder) where their call stands."""

    model_config = ConfigDict(frozen=True)

    alert_id: int
    status: AckStatus
    message: str = ""
    # On `received`: the `seq` of the SOS message it answers, when that message had one, so a
    # device (or a gateway) resending one SOS knows which press is safe. Left out when None.
    seq: int | None = None


class CommandPayload(BaseModel):
    """Downlink: a command to the device."""

    model_config = ConfigDict(frozen=True)

    command: Literal["ping", "locate", "configure"]
    params: dict[str, Any] = Field(default_factory=dict)
    id: str
