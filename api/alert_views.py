"""How an alert is shown, and to whom: the queue item, the detail, the timeline entry.

The same alert object goes out in the queue, in the detail and in the SSE stream. Engineers look
after devices, not people: they see no elder, no contacts and no SOS location, and the free text
dispatchers write (notes, escalation reasons, resolution notes) is withheld from them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from alerting.model import AlertStatus, AlertType, Category, Outcome, Priority
from alerting.store import AlertEventRow, AlertRow
from api.tokens import Principal
from api.users import Role
from devices.elders import ContactRelation, ElderCategory, ElderRow, in_scope
from devices.registry import DeviceRow, DeviceStatus

# Roles that may see who an alert is about (the people registry's readers).
SEES_PEOPLE = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})

WITHHELD = "(withheld)"
# Timeline entries whose free text a dispatcher wrote: action → the detail keys holding it.
_WRITTEN_TEXT = {"note": ("text",), "escalated": ("reason",), "resolved": ("note",)}


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    elder_id: int | None
    type: AlertType
    category: Category
    priority: Priority
    status: AlertStatus
    count: int
    created_at: datetime
    updated_at: datetime
    occurred_at: datetime
    last_occurred_at: datetime
    claimed_at: datetime | None
    claimed_by: str | None
    resolved_at: datetime | None
    outcome: Outcome | None
    location: dict[str, Any] | None = Field(
        description="The SOS location; null for engineers (it is where the elder lives)."
    )
    attributes: dict[str, Any]
    # Escalation: when it last entered the queue unclaimed (its claim deadline counts from
    # here), when the system escalated it, how many reminders followed, when the elder's
    # contacts were told.
    queued_at: datetime
    escalated_at: datetime | None
    reminders: int
    contacts_notified_at: datetime | None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    action: str
    actor: str
    detail: dict[str, Any]


class ElderBrief(BaseModel):
    """Who the alert is about: what a dispatcher needs on the phone."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    phone: str | None
    address: str | None
    community: str | None
    location: dict[str, Any] | None
    categories: list[ElderCategory]
    medical_notes: str | None
    key_safe_note: str | None


class ContactBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    position: int
    name: str
    phone: str
    relation: ContactRelation


class DeviceBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    model: str
    room: str | None
    status: DeviceStatus
    battery: float | None
    online: bool | None
    last_seen_at: datetime | None


class AlertDetail(AlertOut):
    elder: ElderBrief | None = Field(
        description="The alert's elder; null when it has none, and for engineers."
    )
    device: DeviceBrief | None = Field(
        description="The device that raised it as registered now; null when not registered."
    )
    contacts: list[ContactBrief] = Field(
        description="The elder's contacts in calling order (position 1 first); [] for engineers."
    )
    timeline: list[TimelineEntry]
    telemetry: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Recent telemetry, filled when a telemetry store is configured; [] until then.",
    )


def alert_view(row: AlertRow, user: Principal) -> AlertOut:
    alert = AlertOut.model_validate(row)
    if user.role not in SEES_PEOPLE:
        alert.location = None
    return alert


def timeline_view(entry: AlertEventRow, user: Principal) -> TimelineEntry:
    view = TimelineEntry.model_validate(entry)
    if user.role not in SEES_PEOPLE:
        keys = _WRITTEN_TEXT.get(view.action, ())
        view.detail = {k: (WITHHELD if k in keys else v) for k, v in view.detail.items()}
    return view


def alert_in_scope(session: Session, alert: AlertRow, scope: str) -> bool:
    """A scoped user sees the alerts of elders within their scope, and no elder-less ones."""
    if not scope:
        return True
    elder = session.get(ElderRow, alert.elder_id) if alert.elder_id is not None else None
    return elder is not None and in_scope(elder.community, scope)


def alert_detail(
    session: Session, row: AlertRow, timeline: list[AlertEventRow], user: Principal
) -> AlertDetail:
    people = user.role in SEES_PEOPLE
    elder = session.get(ElderRow, row.elder_id) if people and row.elder_id is not None else None
    device = session.get(DeviceRow, row.device_id)
    return AlertDetail(
        **alert_view(row, user).model_dump(),
        elder=ElderBrief.model_validate(elder) if elder is not None else None,
        device=DeviceBrief.model_validate(device) if device is not None else None,
        contacts=[ContactBrief.model_validate(c) for c in elder.contacts] if elder else [],
        timeline=[timeline_view(e, user) for e in timeline],
    )
