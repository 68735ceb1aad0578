"""Keyset pagination by a row's id: the cursor is the last id of the page, opaque to clients."""

from __future__ import annotations

import base64

from fastapi import HTTPException, status

from api.params import ID_MAX


def encode_cursor(last: int | str) -> str:
    return base64.urlsafe_b64encode(str(last).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="invalid cursor") from exc


def decode_int_cursor(cursor: str) -> int:
    text = decode_cursor(cursor)
    if not (text.isascii() and text.isdigit()) or int(text) > ID_MAX:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="invalid cursor")
    return int(text)
