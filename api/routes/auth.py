"""``POST /api/v1/auth/token``: the OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict

from api.deps import Context, DbSession
from api.problems import problem
from api.tokens import Principal
from api.users import Role, authenticate

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = structlog.get_logger(__name__)


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"access_token": "eyJhbGciOi…", "token_type": "bearer"}]}
    )

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


LOGIN_FAILURES = Counter(
    "anxin_login_failures_total",
    "Logins refused: a wrong username or password, or too many of those (rate_limited)",
    ["reason"],
)

_LIMITED = problem(
    "Too many failed logins for this user or from this address: try again after `Retry-After`"
    " seconds.",
    "too many failed logins: try again in 240 s",
)
_LIMITED["headers"] = {
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
}


@router.post(
    "/token",
    response_model=TokenOut,
    responses={
        401: problem("Wrong username or password.", "incorrect username or password"),
        429: _LIMITED,
    },
)
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: DbSession,
    context: Context,
    request: Request,
) -> TokenOut:
    """A token for the user. Failed logins are limited per user and per client address
    (api/login_limit.py: 5 and 20 in 5 minutes); beyond, 429 with `Retry-After`."""
    client = request.client.host if request.client else ""
    now = context.clock()
    wait = context.logins.retry_after(form.username, client, now)
    if wait is not None:
        LOGIN_FAILURES.labels("rate_limited").inc()
        log.warning("auth.login_rate_limited", retry_after_s=wait)
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed logins: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = authenticate(session, form.username, form.password)
    if user is None:
        context.logins.failed(form.username, client, now)
        LOGIN_FAILURES.labels("bad_credentials").inc()
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    context.logins.succeeded(form.username)
    session.commit()  # keeps a rehashed password, if the hasher upgraded it
    principal = Principal(
        username=user.username,
        role=Role(user.role),
        scope=user.scope,
        version=user.token_version,
    )
    return TokenOut(access_token=context.tokens.issue(principal, context.clock()))
