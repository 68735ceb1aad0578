"""What the engine decides. The shell (ingest) carries the decisions out; the engine does no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from alerting.model import AlertType, Category, Priority
from devices.registry import Sighting


@dataclass(frozen=True, kw_only=True, slots=True)
class RaiseAlert:
    """Open an alert, or count one more occurrence on the same open alert."""

    device_id: str
    elder_id: int | None
    type: AlertType
    category: Category
    priority: Priority
    occurred_at: datetime
    location: Mapping[str, Any] | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # Tell the device (and so the elder) that the call was received.
    acknowledge_device: bool = False
    # The device's message number: a redelivery with the same seq is not a new occurrence.
    seq: int | None = None
    # False: over the device's rate limit; the open alert is answered but not counted.
    counted: bool = True


# Not frozen: one or more is made per message, and a frozen dataclass's __init__ costs three
# times as much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class RecordSighting:
    sighting: Sighting


@dataclass(frozen=True, kw_only=True, slots=True)
class RejectMessage:
    """The message is well-formed but cannot be used; it goes to the dead letters."""

    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolveAlert:
    """Close the device's open alert of ``type`` by itself: the condition is gone."""

    device_id: str
    type: AlertType
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelAlert:
    """The device withdrew the alert (a fall cancelled in time); it is kept, marked cancelled."""

    device_id: str
    type: AlertType
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class NoteOnAlert:
    """Something the dispatcher should see on an open alert, which stays open (a smoke
    detector that went quiet: someone must still check)."""

    device_id: str
    type: AlertType
    action: str
    detail: Mapping[str, Any] = field(default_factory=dict)


class DeadlineRule(StrEnum):
    """The time rules kept as stored deadlines (alerting/welfare.py)."""

    INACTIVITY = "inactivity"  # subject: the elder's id
    CHECKIN = "checkin"  # subject: the elder's id
    BED = "bed"  # subject: the bed sensor's id
    TEST = "test"  # subject: the device's id


@dataclass(frozen=True, kw_only=True, slots=True)
class SetDeadline:
    """Something happened at ``basis_at`` (a movement, check-in, test, going to or getting out
    of bed): the rule's deadline for ``subject`` is now ``due_at`` (None: nothing is due)."""

    rule: DeadlineRule
    subject: str
    elder_id: int | None
    device_id: str
    basis_at: datetime
    due_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolveElderAlert:
    """Close the elder's open welfare alert of ``type`` by itself: the elder showed the
    answer (moved, checked in, got up)."""

    elder_id: int
    type: AlertType
    reason: str


Decision = (
    RaiseAlert
    | RecordSighting
    | RejectMessage
    | ResolveAlert
    | CancelAlert
    | NoteOnAlert
    | SetDeadline
    | ResolveElderAlert
)
