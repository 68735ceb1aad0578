"""Users of the API: dispatchers, supervisors, admins, engineers and visitors, with hashed
passwords."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pwdlib import PasswordHash
from sqlalchemy import Boolean, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from devices.elders import parse_community
from devices.sql import Base, UtcDateTime


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    ENGINEER = "engineer"
    # A community worker (网格员, 社工) who makes home visits: always scoped to a community;
    # sees its visits and elders, not the alert queue nor the devices.
    VISITOR = "visitor"


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # Community tiers this user may see, "/"-separated from the city down; "" sees everything.
    scope: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Carried by every token issued; bumped when the user is disabled or their role, scope or
    # password changes, which ends the tokens issued before (api/deps.py checks it).
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=lambda: datetime.now(UTC))


class UserError(ValueError):
    """A user cannot be created as asked."""


class UserExistsError(UserError):
    """The username is taken."""


# Argon2id with pwdlib's recommended parameters.
_hasher = PasswordHash.recommended()
# Verified against when the user does not exist, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("anxin-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def save_user(
    session: Session, username: str, password: str, role: Role, scope: str = ""
) -> UserRow:
    """Create the user, or reset the password, role and scope of an existing one."""
    if not username or len(username) > 64:
        raise UserError("a username is 1 to 64 characters")
    check_password(password)
    if role is Role.VISITOR and not scope:
        raise UserError("a visitor needs a scope: the community they visit in")
    scope = tidy_scope(scope)
    row = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
    if row is None:
        row = UserRow(username=username, role=role.value, scope=scope)
        session.add(row)
    else:
        row.token_version += 1
    row.password_hash = hash_password(password)
    row.role, row.scope, row.active = role.value, scope, True
    return row


def create_user(
    session: Session, username: str, password: str, role: Role, scope: str = ""
) -> UserRow:
    """A new user (never an existing one changed: that is :func:`save_user`'s, the CLI's)."""
    if session.scalars(select(UserRow.id).where(UserRow.username == username)).first():
        raise UserExistsError(f"user {username} exists")
    return save_user(session, username, password, role, scope)


def reset_password(row: UserRow, password: str) -> None:
    check_password(password)
    row.password_hash = hash_password(password)
    row.token_version += 1


def check_password(password: str) -> None:
    if len(password) < 8:
        raise UserError("a password needs at least 8 characters")


def tidy_scope(scope: str) -> str:
    if not scope:
        return ""
    try:
        scope = parse_community(scope)
    except ValueError as exc:
        raise UserError(f"scope: {exc}") from exc
    if len(scope) > 255:
        raise UserError("scope: at most 255 characters")
    return scope


def token_state(session: Session, username: str) -> tuple[bool, int] | None:
    """(active, token version) of the user, None if there is no such user: one indexed read."""
    row = session.execute(
        select(UserRow.active, UserRow.token_version).where(UserRow.username == username)
    ).first()
    return None if row is None else (bool(row[0]), int(row[1]))


def authenticate(session: Session, username: str, password: str) -> UserRow | None:
    row = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
    if row is None or not row.active:
        _hasher.verify(password, _DUMMY_HASH)
        return None
    valid, new_hash = _hasher.verify_and_update(password, row.password_hash)
    if not valid:
        return None
    if new_hash is not None:
        row.password_hash = new_hash
    return row
