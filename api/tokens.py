"""Bearer tokens: signed JWTs that carry who the user is, their role and their scope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from api.users import Role

ALGORITHM = "HS256"


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """Who is calling."""

    username: str
    role: Role
    scope: str
    # The user's token version when the token was issued (api/users.py: UserRow.token_version).
    version: int = 0


class InvalidTokenError(Exception):
    """The token is missing, expired, or not ours."""


class TokenService:
    def __init__(self, secret: str, lifetime: timedelta = timedelta(hours=12)) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret needs at least 32 characters")
        self._secret, self._lifetime = secret, lifetime

    def issue(self, principal: Principal, now: datetime) -> str:
        claims = {
            "sub": principal.username,
            "role": principal.role.value,
            "scope": principal.scope,
            "ver": principal.version,
            "iat": now,
            "exp": now + self._lifetime,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
            return Principal(
                username=str(claims["sub"]),
                role=Role(claims["role"]),
                scope=str(claims.get("scope", "")),
                version=int(claims.get("ver", 0)),
            )
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise InvalidTokenError(str(exc)) from exc
