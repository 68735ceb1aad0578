"""The people served: ``/api/v1/elders``. Personal data: by role and by community scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import select

from alerting.welfare_rules import WelfareValues
from api.audit import record
from api.commit import commit_or_conflict
from api.deps import Context, DbSession, PeopleReader, RegistryAdmin
from api.pagination import decode_int_cursor, encode_cursor
from api.params import ElderId
from api.problems import problem, role_refused
from api.tokens import Principal
from devices.elders import (
    ContactRelation,
    ContactRow,
    ElderCategory,
    ElderRow,
    in_scope,
    parse_community,
    within_community,
)

TIER = r"[^/]*[^/\s\x00-\x1f\x7f-\x9f][^/]*"
COMMUNITY_PATTERN = f"^{TIER}(/{TIER}){{0,3}}$"

router = APIRouter(prefix="/api/v1/elders", tags=["elders"])

_ELDER_NOT_FOUND = problem("No such elder, or not within your scope.", "elder not found")

_DUPLICATE = problem("The external id is another elder's.", "an elder with this external_id exists")

Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{5,20}$", examples=["13800138000"])]


class Location(BaseModel):
    # Numbers as numbers: "41.1" or true is no latitude (the schema says number).
    model_config = ConfigDict(strict=True)

    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class ContactIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    phone: Phone
    relation: ContactRelation = ContactRelation.FAMILY
    # The relation as written (儿子, 老伴, son), when it says more than `relation`.
    label: Annotated[str, Field(max_length=32)] | None = None


class ContactOut(ContactIn):
    model_config = ConfigDict(from_attributes=True)

    position: int


class ElderFields(BaseModel):
    external_id: Annotated[str, Field(max_length=64)] | None = None
    phone: Phone | None = None
    address: Annotated[str, Field(max_length=255)] | None = None
    community: Annotated[
        str | None,
        Field(
            max_length=255,
            # 1 to 4 '/'-separated tiers, none blank (what parse_community takes).
            pattern=COMMUNITY_PATTERN,
            examples=["张家口市/张北县/花园街道/幸福社区"],
        ),
    ] = None
    location: Location | None = None
    categories: list[ElderCategory] = Field(default_factory=list)
    medical_notes: str | None = None
    key_safe_note: str | None = None
    # The elder's own welfare rules over their categories' (docs/alert-rules.md): opt-in to
    # the daily check-in, wandering, times of day, inactivity hours. Unset values inherit.
    welfare: WelfareValues | None = None

    @field_validator("community")
    @classmethod
    def _community(cls, value: str | None) -> str | None:
        return None if value is None else parse_community(value)


class ElderIn(ElderFields):
    name: Annotated[str, Field(min_length=1, max_length=64, examples=["张秀英"])]
    # In calling order: the first is called first.
    contacts: list[ContactIn] = Field(default_factory=list)


class ElderPatch(ElderFields):
    """Only the fields sent change; ``contacts``, when sent, replaces the list."""

    # May be left out, never null (an elder has a name): the schema says so.
    name: Annotated[str, Field(min_length=1, max_length=64)] | SkipJsonSchema[None] = None
    categories: list[ElderCategory] | None = None  # type: ignore[assignment]
    contacts: list[ContactIn] | None = None


class ElderOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "external_id": "ZB-000123",
                    "name": "张秀英",
                    "phone": "13800138000",
                    "address": "花园街3号",
                    "community": "张家口市/张北县/花园街道/幸福社区",
                    "location": {"lat": 41.15, "lon": 114.7},
                    "categories": ["living_alone", "advanced_age"],
                    "medical_notes": "高血压",
                    "key_safe_note": "钥匙在门口花盆下",
                    "contacts": [
                        {
                            "position": 1,
                            "name": "李明",
                            "phone": "13900139000",
                            "relation": "family",
                        }
                    ],
                    "created_at": "2026-11-01T08:00:00Z",
                    "updated_at": "2026-11-01T08:00:00Z",
                }
            ]
        },
    )

    id: int
    external_id: str | None
    name: str
    phone: str | None
    address: str | None
    community: str | None
    location: Location | None
    categories: list[ElderCategory]
    medical_notes: str | None
    key_safe_note: str | None
    welfare: WelfareValues | None
    contacts: list[ContactOut]
    created_at: datetime
    updated_at: datetime


class ElderPage(BaseModel):
    items: list[ElderOut]
    next_cursor: str | None


@router.get(
    "",
    response_model=ElderPage,
    responses={403: role_refused("engineer"), 400: problem("A bad cursor.", "invalid cursor")},
)
def list_elders(
    session: DbSession,
    user: PeopleReader,
    community: str | None = None,
    category: ElderCategory | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> ElderPage:
    """Elders in the caller's scope; ``community`` narrows to a tier path and all below it."""
    query = select(ElderRow).order_by(ElderRow.id)
    for prefix in (user.scope, community):
        if prefix:
            query = query.where(within_community(prefix))
    if cursor is not None:
        query = query.where(ElderRow.id > decode_int_cursor(cursor))
    rows = list(session.scalars(query.limit(limit + 1 if category is None else None)))
    if category is not None:  # JSON lists filter portably in Python
        rows = [r for r in rows if category.value in (r.categories or [])][: limit + 1]
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return ElderPage(
        items=[ElderOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )


@router.post(
    "",
    response_model=ElderOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: problem(
            "Only admins; a scoped admin only within the scope.",
            "community must be within your scope 张家口市/张北县",
        ),
        409: problem(
            "The external id is another elder's.", "an elder with this external_id exists"
        ),
    },
)
def create_elder(
    body: ElderIn, session: DbSession, user: RegistryAdmin, context: Context
) -> ElderOut:
    _check_scope(user, body.community)
    elder = ElderRow(
        **body.model_dump(exclude={"contacts", "location", "categories", "welfare"}),
        location=body.location.model_dump() if body.location else None,
        categories=[c.value for c in body.categories],
        welfare=_welfare(body.welfare),
    )
    elder.contacts = _contacts(body.contacts)
    session.add(elder)
    commit_or_conflict(
        session,
        "an elder with this external_id exists",
        before=lambda: _audit(
            session, context, user, "elder.created", elder, sorted(body.model_fields_set)
        ),
    )
    return ElderOut.model_validate(elder)


@router.get(
    "/{elder_id}",
    response_model=ElderOut,
    responses={
        403: role_refused("engineer"),
        404: _ELDER_NOT_FOUND,
    },
)
def read_elder(elder_id: ElderId, session: DbSession, user: PeopleReader) -> ElderOut:
    return ElderOut.model_validate(_visible(session, user, elder_id))


@router.patch(
    "/{elder_id}",
    response_model=ElderOut,
    responses={
        403: role_refused("dispatcher"),
        404: _ELDER_NOT_FOUND,
        409: problem(
            "The external id is another elder's.", "an elder with this external_id exists"
        ),
    },
)
def update_elder(
    elder_id: ElderId, body: ElderPatch, session: DbSession, user: RegistryAdmin, context: Context
) -> ElderOut:
    elder = _visible(session, user, elder_id)
    changes = body.model_dump(
        exclude_unset=True, exclude={"contacts", "location", "categories", "welfare"}
    )
    if "name" in changes and changes["name"] is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="name cannot be null")
    if "community" in changes:
        _check_scope(user, changes["community"])
    for name, value in changes.items():
        setattr(elder, name, value)
    if "location" in body.model_fields_set:
        elder.location = body.location.model_dump() if body.location else None
    if body.categories is not None:
        elder.categories = [c.value for c in body.categories]
    if "welfare" in body.model_fields_set:
        elder.welfare = _welfare(body.welfare)
    if body.contacts is not None:
        elder.contacts = _contacts(body.contacts)
    commit_or_conflict(
        session,
        "an elder with this external_id exists",
        before=lambda: _audit(
            session, context, user, "elder.updated", elder, sorted(body.model_fields_set)
        ),
    )
    return ElderOut.model_validate(elder)


def _audit(
    session: DbSession,
    context: Context,
    user: Principal,
    action: str,
    elder: ElderRow,
    fields: list[str],
) -> None:
    """Which fields changed, never their values: they are the elder's personal data."""
    detail: dict[str, Any] = {"fields": fields}
    if "contacts" in fields:
        detail["contacts"] = len(elder.contacts)
    record(
        session,
        at=context.clock(),
        actor=user.username,
        action=action,
        target=f"elder:{elder.id}",
        community=elder.community,
        detail=detail,
    )


def _welfare(values: WelfareValues | None) -> dict[str, Any] | None:
    """Stored as JSON with the values set: times as "HH:MM:SS"."""
    stored = values.model_dump(mode="json", exclude_none=True) if values else {}
    return stored or None


def _contacts(contacts: list[ContactIn]) -> list[ContactRow]:
    return [
        ContactRow(position=i, name=c.name, phone=c.phone, relation=c.relation.value, label=c.label)
        for i, c in enumerate(contacts, start=1)
    ]


def _visible(session: DbSession, user: Principal, elder_id: int) -> ElderRow:
    elder = session.get(ElderRow, elder_id)
    # Out of scope looks the same as absent: no hint that the person exists.
    if elder is None or not in_scope(elder.community, user.scope):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="elder not found")
    return elder


def _check_scope(user: Principal, community: str | None) -> None:
    if user.scope and not in_scope(community, user.scope):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"community must be within your scope {user.scope}"
        )
