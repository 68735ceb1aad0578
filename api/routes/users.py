"""Users over HTTP: ``/api/v1/users``, admins only; a scoped admin administers the users of
their own communities. Passwords are hashed as the CLI does, never returned nor logged.

An admin does not change their own account here (role, scope, active flag, password): another
admin or the CLI does. So the caller, an active admin, always remains one: no change made here
leaves the installation without an admin (a scoped admin cannot reach an unscoped one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit import record
from api.commit import commit_or_conflict
from api.deps import Context, DbSession, RegistryAdmin
from api.pagination import decode_int_cursor, encode_cursor
from api.params import ID_MAX
from api.problems import problem, refuse_null, role_refused
from api.routes.elders import TIER
from api.tokens import Principal
from api.users import (
    Role,
    UserError,
    UserExistsError,
    UserRow,
    create_user,
    reset_password,
    tidy_scope,
)
from devices.elders import in_scope, within_community

router = APIRouter(prefix="/api/v1/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=ID_MAX, description="The user's id.")]
# "" (everything) or 1 to 4 "/"-separated tiers, none blank.
Scope = Annotated[
    str, Field(max_length=255, pattern=f"^(|{TIER}(/{TIER}){{0,3}})$", examples=["张家口市/张北县"])
]
Password = Annotated[str, Field(min_length=8, max_length=128, examples=["a-long-passphrase"])]

_NOT_FOUND = problem("No such user, or not within your scope.", "user not found")
_OWN = problem(
    "Your own account: another admin (or the CLI) changes it.",
    "an admin does not change their own account here",
)
_OUT_OF_SCOPE = problem(
    "A scoped admin gives only scopes within their own.",
    "scope must be within your scope 张家口市/张北县",
)


class UserIn(BaseModel):
    username: Annotated[str, Field(pattern=r"^[^\s\x00-\x1f\x7f-\x9f]{1,64}$", examples=["wang"])]
    password: Password
    role: Role
    scope: Scope = ""


class UserPatch(BaseModel):
    """Only the fields sent change; `active: false` disables the user and ends their tokens."""

    role: Role | SkipJsonSchema[None] = None
    scope: Scope | SkipJsonSchema[None] = None
    active: StrictBool | SkipJsonSchema[None] = None


class PasswordIn(BaseModel):
    password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "username": "wang",
                    "role": "dispatcher",
                    "scope": "张家口市/张北县",
                    "active": True,
                    "created_at": "2026-11-01T08:00:00Z",
                }
            ]
        },
    )

    id: int
    username: str
    role: Role
    scope: str
    active: bool
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


@router.get(
    "",
    response_model=UserPage,
    responses={403: role_refused("dispatcher"), 400: problem("A bad cursor.", "invalid cursor")},
)
def list_users(
    session: DbSession,
    admin: RegistryAdmin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> UserPage:
    """The users within the caller's scope, by id."""
    query = select(UserRow).order_by(UserRow.id)
    if admin.scope:
        query = query.where(within_community(admin.scope, UserRow.scope))
    if cursor is not None:
        query = query.where(UserRow.id > decode_int_cursor(cursor))
    rows = list(session.scalars(query.limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return UserPage(
        items=[UserOut.model_validate(r) for r in rows[:limit]], next_cursor=next_cursor
    )


@router.post(
    "",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses={403: _OUT_OF_SCOPE, 409: problem("The username is taken.", "user wang exists")},
)
def add_user(body: UserIn, session: DbSession, admin: RegistryAdmin, context: Context) -> UserOut:
    try:
        _check_scope(admin, tidy_scope(body.scope))
        row = create_user(session, body.username, body.password, body.role, body.scope)
    except UserExistsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    record(
        session,
        at=context.clock(),
        actor=admin.username,
        action="user.created",
        target=f"user:{row.username}",
        community=row.scope,
        detail={"role": row.role, "scope": row.scope},
    )
    commit_or_conflict(session, f"user {body.username} exists")
    return UserOut.model_validate(row)


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    responses={403: _OUT_OF_SCOPE, 404: _NOT_FOUND, 409: _OWN},
)
def update_user(
    user_id: UserId,
    body: UserPatch,
    session: DbSession,
    admin: RegistryAdmin,
    context: Context,
) -> UserOut:
    """Disable or enable (`active`), change the role or the scope. Any change but enabling ends
    the user's tokens issued before it."""
    row = _administered(session, admin, user_id)
    sent = body.model_dump(exclude_unset=True, mode="json")
    refuse_null(sent, "role", "scope", "active")
    changes = {name: value for name, value in sent.items() if value != getattr(row, name)}
    if "scope" in changes:
        try:
            changes["scope"] = tidy_scope(str(changes["scope"]))
        except UserError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        _check_scope(admin, str(changes["scope"]))
    if changes:
        before = {name: getattr(row, name) for name in changes}
        for name, value in changes.items():
            setattr(row, name, value)
        row.token_version += 1
        record(
            session,
            at=context.clock(),
            actor=admin.username,
            action="user.updated",
            target=f"user:{row.username}",
            community=row.scope,
            detail={name: [before[name], value] for name, value in changes.items()},
        )
        session.commit()
    return UserOut.model_validate(row)


@router.post(
    "/{user_id}/password",
    response_model=UserOut,
    responses={403: _OUT_OF_SCOPE, 404: _NOT_FOUND, 409: _OWN},
)
def set_password(
    user_id: UserId,
    body: PasswordIn,
    session: DbSession,
    admin: RegistryAdmin,
    context: Context,
) -> UserOut:
    """A new password; the user's tokens issued before it stop working."""
    row = _administered(session, admin, user_id)
    reset_password(row, body.password)
    record(
        session,
        at=context.clock(),
        actor=admin.username,
        action="user.password_reset",
        target=f"user:{row.username}",
        community=row.scope,
    )
    session.commit()
    return UserOut.model_validate(row)


def _administered(session: Session, admin: Principal, user_id: int) -> UserRow:
    """The user, if within the admin's scope (else 404) and not the admin (else 409)."""
    row = session.get(UserRow, user_id)
    if row is None or (admin.scope and not (row.scope and in_scope(row.scope, admin.scope))):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="user not found")
    if row.username == admin.username:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="an admin does not change their own account here"
        )
    return row


def _check_scope(admin: Principal, scope: str) -> None:
    if admin.scope and not (scope and in_scope(scope, admin.scope)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"scope must be within your scope {admin.scope}"
        )
