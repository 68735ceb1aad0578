"""One step of a worked item (an alert, a visit): written only if nobody moved it first."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from devices.sql import Base


def compare_and_set(
    session: Session,
    model: type[Base],
    row_id: int,
    *,
    status: InstrumentedAttribute[str],
    seen_status: str,
    holder: InstrumentedAttribute[str | None],
    seen_holder: str | None,
    values: dict[str, Any],
) -> bool:
    """Write ``values`` to the row only if it still has the status and holder we read:
    two dispatchers (or workers) acting at once, one wins and the other hears so."""
    held = holder.is_(None) if seen_holder is None else holder == seen_holder
    result = cast(
        "CursorResult[Any]",
        session.execute(
            update(model)
            .where(model.id == row_id, status == seen_status, held)  # type: ignore[attr-defined]
            .values(**values)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1
