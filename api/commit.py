"""Committing a registry change: a unique value already taken is the caller's 409."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


def commit_or_conflict(
    session: Session, detail: str, before: Callable[[], None] | None = None
) -> None:
    """Commit; ``before`` runs once the rows are flushed (their ids known), in the same
    transaction: the audit entry of the change."""
    try:
        if before is not None:
            session.flush()
            before()
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, detail=detail) from exc
