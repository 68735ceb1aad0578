"""Device-supplied values made fit for SQL JSON columns, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 16


def storable(value: Any, depth: int = 0) -> Any:
    """No NaN or infinities (JSON has none), no NUL characters (PostgreSQL refuses them),
    no lone surrogates, and nesting cut at ``MAX_DEPTH``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {storable_text(str(k)): storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(item, depth + 1) for item in value]
    return value


def storable_text(text: str) -> str:
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
