from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.tokens import InvalidTokenError, Principal, TokenService
from api.users import Role

SECRET = "s" * 40
ALICE = Principal(username="alice", role=Role.SUPERVISOR, scope="张家口市/张北县")


def test_a_token_carries_who_what_and_where() -> None:
    tokens = TokenService(SECRET)
    assert tokens.verify(tokens.issue(ALICE, datetime.now(UTC))) == ALICE


def test_an_expired_token_is_refused() -> None:
    tokens = TokenService(SECRET, lifetime=timedelta(minutes=5))
    token = tokens.issue(ALICE, datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(InvalidTokenError):
        tokens.verify(token)


def test_a_token_signed_by_another_key_is_refused() -> None:
    token = TokenService("x" * 40).issue(ALICE, datetime.now(UTC))
    with pytest.raises(InvalidTokenError):
        TokenService(SECRET).verify(token)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        TokenService("short")
