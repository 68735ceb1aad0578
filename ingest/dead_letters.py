"""Dead letters: messages that could not be used, kept with topic, bytes, reason and time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from devices.events import Rejected
from devices.sql import Base, UtcDateTime
from devices.storable import storable_text

MAX_TOPIC_CHARS = 512
MAX_REASON_CHARS = 500


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    topic: Mapped[str] = mapped_column(String(MAX_TOPIC_CHARS))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(MAX_REASON_CHARS))
    payload: Mapped[bytes] = mapped_column(LargeBinary)


def store_dead_letters(session: Session, rejected: Iterable[Rejected]) -> None:
    session.add_all(
        DeadLetterRow(
            received_at=item.received_at,
            # Text columns refuse NUL on PostgreSQL: a device must not be able to put one there.
            topic=storable_text(item.topic[:MAX_TOPIC_CHARS]),
            device_id=item.device_id,
            reason=storable_text(item.reason[:MAX_REASON_CHARS]),
            payload=item.payload,
        )
        for item in rejected
    )
