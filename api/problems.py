"""Errors as the API answers them: ``{"detail": "..."}``, with examples for OpenAPI."""

from __future__ import annotations

from typing import Any

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
