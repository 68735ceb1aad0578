"""How an alert is shown, and to whom: the queue item, the detail, the timeline entry.

The same alert object goes out in the queue, in the detail and in the SSE stream. Engineers look
after devices, not people: they see no elder, no contacts and no SOS location, and the free text
dispatchers write (notes, escalation reasons, resolution notes) is withheld from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


ALERT_EXAMPLE: dict[str, Any] = {
    "id": 12,
    "device_id": "pendant-0017",
    "elder_id": 3,
    "type": "sos",
    "category": "emergency",
    "priority": "critical",
    "status": "claimed",
    "count": 2,
    "created_at": "2026-11-22T03:00:00Z",
    "updated_at": "2026-11-22T03:00:41Z",
    "occurred_at": "2026-11-22T02:59:59Z",
    "last_occurred_at": "2026-11-22T03:00:20Z",
    "claimed_at": "2026-11-22T03:00:41Z",
    "claimed_by": "wang",
    "resolved_at": None,
    "outcome": None,
    "location": {"room": "卧室"},
    "attributes": {"trigger": "button", "seq": 88},
}


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [ALERT_EXAMPLE]})

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
    label: str | None = None


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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **ALERT_EXAMPLE,
                    "elder": {
                        "id": 3,
                        "name": "张秀英",
                        "phone": "13800138000",
                        "address": "花园街3号",
                        "community": "张家口市/张北县/花园街道/幸福社区",
                        "location": None,
                        "categories": ["living_alone", "advanced_age"],
                        "medical_notes": "高血压",
                        "key_safe_note": "钥匙在门口花盆下",
                    },
                    "device": {
                        "id": "pendant-0017",
                        "model": "sos-pendant",
                        "room": "卧室",
                        "status": "active",
                        "battery": 81.0,
                        "online": True,
                        "last_seen_at": "2026-11-22T03:00:20Z",
                    },
                    "contacts": [
                        {
                            "position": 1,
                            "name": "李明",
                            "phone": "13900139000",
                            "relation": "family",
                            "label": "儿子",
                        }
                    ],
                    "timeline": [
                        {
                            "at": "2026-11-22T03:00:00Z",
                            "action": "created",
                            "actor": "device:pendant-0017",
                            "detail": {"trigger": "button", "seq": 87},
                        },
                        {
                            "at": "2026-11-22T03:00:20Z",
                            "action": "coalesced",
                            "actor": "device:pendant-0017",
                            "detail": {"count": 2},
                        },
                        {
                            "at": "2026-11-22T03:00:41Z",
                            "action": "claimed",
                            "actor": "wang",
                            "detail": {},
                        },
                    ],
                    "telemetry": [
                        {"time": "2026-11-22T02:55:00Z", "metric": "battery", "value": 41.0}
                    ],
                }
            ]
        }
    )

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
        description=(
            "The device's telemetry from the day before the alert to the day after, oldest "
            "first, at most 300 points; [] without a telemetry store, or when it does not "
            "answer within 1.5 s."
        ),
    )


def sees_people(user: Principal) -> bool:
    return user.role in SEES_PEOPLE


def alert_view(row: AlertRow, user: Principal | bool) -> AlertOut:
    """The alert for ``user`` (or for anyone who does, or does not, see people)."""
    alert = AlertOut.model_validate(row)
    if not (user if isinstance(user, bool) else sees_people(user)):
        alert.location = None
    return alert


def timeline_view(entry: AlertEventRow, user: Principal | bool) -> TimelineEntry:
    view = TimelineEntry.model_validate(entry)
    if not (user if isinstance(user, bool) else sees_people(user)):
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
    session: Session,
    row: AlertRow,
    timeline: list[AlertEventRow],
    user: Principal,
    telemetry: Sequence[Mapping[str, Any]] = (),
) -> AlertDetail:
    """``telemetry``: the device's recent points, when a telemetry store is configured."""
    people = sees_people(user)
    elder = session.get(ElderRow, row.elder_id) if people and row.elder_id is not None else None
    device = session.get(DeviceRow, row.device_id)
    return AlertDetail(
        **alert_view(row, user).model_dump(),
        elder=ElderBrief.model_validate(elder) if elder is not None else None,
        device=DeviceBrief.model_validate(device) if device is not None else None,
        contacts=[ContactBrief.model_validate(c) for c in elder.contacts] if elder else [],
        timeline=[timeline_view(e, user) for e in timeline],
        telemetry=[dict(point) for point in telemetry],
    )
