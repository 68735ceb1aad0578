"""``POST /api/v1/auth/token``: the OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict

from api.deps import Context, DbSession
from api.problems import problem
from api.tokens import Principal
from api.users import Role, authenticate

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"access_token": "eyJhbGciOi…", "token_type": "bearer"}]}
    )

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: problem("Wrong username or password.", "incorrect username or password")},
)
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: DbSession, context: Context
) -> TokenOut:
    user = authenticate(session, form.username, form.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    session.commit()  # keeps a rehashed password, if the hasher upgraded it
    principal = Principal(username=user.username, role=Role(user.role), scope=user.scope)
    return TokenOut(access_token=context.tokens.issue(principal, context.clock()))
