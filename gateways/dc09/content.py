"""What follows the ``[`` of a frame, once plain: ``<data>]`` then ``[x…]`` blocks then an
optional ``_HH:MM:SS,MM-DD-YYYY`` (UTC). No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from gateways.dc09.frames import FrameError

_TIMESTAMP = re.compile(r"_(\d{2}):(\d{2}):(\d{2}),(\d{2})-(\d{2})-(\d{4})")


@dataclass(frozen=True, kw_only=True, slots=True)
class Content:
    data: str
    # Extended data blocks: (identifier, value), in order; unknown identifiers kept.
    extended: tuple[tuple[str, str], ...]
    timestamp: datetime | None


def parse_content(rest: bytes) -> Content:
    """Raises FrameError("format") when the blocks or the timestamp do not parse.

    Bytes are read as Latin-1 (DC-09 text is Windows-1252 at most; every byte maps)."""
    text = rest.decode("latin-1")
    close = text.find("]")
    if close < 0:
        raise FrameError("format", "the data block has no closing ]")
    data, position = text[:close], close + 1
    extended: list[tuple[str, str]] = []
    while position < len(text) and text[position] == "[":
        end = text.find("]", position)
        if end < 0:
            raise FrameError("format", "an extended data block has no closing ]")
        block = text[position + 1 : end]
        if not block:
            raise FrameError("format", "an empty extended data block")
        extended.append((block[0], block[1:]))
        position = end + 1
    tail = text[position:]
    if not tail:
        return Content(data=data, extended=tuple(extended), timestamp=None)
    return Content(data=data, extended=tuple(extended), timestamp=parse_timestamp(tail))


def parse_timestamp(text: str) -> datetime:
    """``_HH:MM:SS,MM-DD-YYYY`` → an aware UTC datetime; raises FrameError("format")."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise FrameError("format", f"not a timestamp: {text[:40]!r}")
    hour, minute, second, month, day, year = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise FrameError("format", f"not a timestamp: {exc}") from None


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("_%H:%M:%S,%m-%d-%Y")
