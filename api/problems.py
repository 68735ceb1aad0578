"""Errors as the API answers them: ``{"detail": "..."}``, with examples for OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel


class Problem(BaseModel):
    detail: str


def problem(description: str, example: str) -> dict[str, Any]:
    """An entry of a route's ``responses``: what the status means, and an example body."""
    return {
        "model": Problem,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }


UNAUTHORIZED = problem("No token, or a bad or expired one.", "not authenticated")


def role_refused(example_role: str) -> dict[str, Any]:
    return problem("Your role may not do this.", f"the {example_role} role may not do this")


def refuse_null(changes: dict[str, object], *fields: str) -> None:
    """A PATCH's fields that may be left out but are never null (the schema says so): 422."""
    for name in fields:
        if name in changes and changes[name] is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"{name} cannot be null"
            )
