"""Request values exactly as their schema says.

Ids as the database holds them: a row id is an SQL INTEGER (at most 2³¹ − 1 on PostgreSQL,
so on SQLite too), and an id outside that range names no row. Declaring the range in the
parameter's schema makes such an id a 422 (and says so in OpenAPI) instead of the database
driver's overflow, a 500."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BeforeValidator, Field

ID_MAX = 2**31 - 1

AlertId = Annotated[int, Path(ge=1, le=ID_MAX, description="The alert's id.")]
ElderId = Annotated[int, Path(ge=1, le=ID_MAX, description="The elder's id.")]
ElderFilter = Annotated[int | None, Query(ge=1, le=ID_MAX, description="The elder's id.")]
# In a body: an elder a device is assigned to (a number, not "5" nor true).
RowId = Annotated[int, Field(ge=1, le=ID_MAX, strict=True)]


def _text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a date as text, YYYY-MM-DD")
    return value


# A date as the schema says, text: pydantic alone would also take a number (a Unix time).
IsoDate = Annotated[date, BeforeValidator(_text)]


def _moment_text(value: object) -> object:
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("a date and time (RFC 3339, e.g. 2026-11-22T08:00:00+08:00)")
    return value


_NUMBER = re.compile(r"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?")
# A date and time in a query, as text (RFC 3339): not a number of seconds, which pydantic
# alone would read as a Unix time.
Moment = Annotated[datetime, BeforeValidator(_moment_text)]
