"""The data blocks of SIA-DCS (DC-07 SIA text) and ADM-CID (Contact ID) frames. No I/O.

Both may start with the account (``#acct|``, ``acct|`` or ``|``). A block that does not parse
raises :class:`BlockError`: the frame was received correctly, but cannot be processed (DUH).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class BlockError(ValueError):
    """A data block this receiver cannot read."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PanelEvent:
    """One event of a panel, in its own code system."""

    system: str  # "cid" or "sia"
    code: str  # CID: 3 digits; SIA: 2 letters
    restore: bool = False  # CID qualifier 3; a SIA code says it in its letters
    zone: str | None = None  # CID zone (or user), SIA address
    group: str | None = None  # CID group/partition, SIA area (ri)
    text: str | None = None  # SIA ^text^ or |A text

    @property
    def cid(self) -> str | None:
        """``1101`` (qualifier and code) for a Contact ID event."""
        if self.system != "cid":
            return None
        return ("3" if self.restore else "1") + self.code


_ACCOUNT = re.compile(r"#?([0-9A-Za-z]*)\|")
_CID = re.compile(r"([136])(\d{3}) ?(\d{2}) ?(\d{3})")
_MODIFIER = re.compile(r"(ri|id|pi|pm|ai)(\d+)|ti(\d{2}:\d{2}(?::\d{2})?)|da(\d{2}-\d{2}-\d{2})")
_CODE = re.compile(r"([A-Z]{2})(\d*)")
_TEXT = re.compile(r"\^([^^]*)\^")
_LOOSE_TEXT = re.compile(r"[A-Za-z][^/^]*")


def split_account(data: str) -> tuple[str | None, str]:
    """``#1234|1101 01 003`` → ("1234", "1101 01 003"); the account is "" for ``|…``."""
    match = _ACCOUNT.match(data)
    if match is None:
        return None, data
    return match[1], data[match.end() :]


def parse_cid(data: str) -> PanelEvent:
    """``QEEE GG ZZZ``: qualifier 1 new (6 still present, taken as new), 3 restore."""
    _, block = split_account(data)
    match = _CID.fullmatch(block.strip())
    if match is None:
        raise BlockError(f"not a Contact ID block: {block[:40]!r}")
    qualifier, code, group, zone = match.groups()
    return PanelEvent(system="cid", code=code, restore=qualifier == "3", zone=zone, group=group)


def parse_sia(data: str) -> list[PanelEvent]:
    """``N<modifiers>/<CODE><address>[^text^]/…``: one event per code, in order.

    Modifiers (lower case: ``ri`` area, ``id`` user, ``ti`` time …) apply to the codes after
    them; ``/`` separators may be missing (``Nri1CL0``); the leading ``N`` (new event) too.
    """
    _, block = split_account(data)
    text_tail = None
    if "|A" in block:  # fioletoven: ASCII text after the event, "NRR|Atest"
        block, _, text_tail = block.partition("|A")
    if block.startswith("N"):
        block = block[1:]
    events: list[PanelEvent] = []
    area: str | None = None
    position = 0
    while position < len(block):
        char = block[position]
        if char in "/ ":
            position += 1
            continue
        if match := _MODIFIER.match(block, position):
            if match[1] == "ri":
                area = match[2]
            position = match.end()
            continue
        if match := _TEXT.match(block, position):
            if events and events[-1].text is None:
                last = events[-1]
                events[-1] = PanelEvent(
                    system="sia", code=last.code, zone=last.zone, group=last.group,
                    text=match[1].strip() or None,
                )  # fmt: skip
            position = match.end()
            continue
        if match := _CODE.match(block, position):
            events.append(
                PanelEvent(system="sia", code=match[1], zone=match[2] or None, group=area)
            )
            position = match.end()
            # Letters straight after the address ("OP001NM") are text of the event, not a
            # code: codes are separated by "/".
            if tail := _LOOSE_TEXT.match(block, position):
                last = events[-1]
                events[-1] = PanelEvent(
                    system="sia", code=last.code, zone=last.zone, group=last.group,
                    text=tail[0].strip() or None,
                )  # fmt: skip
                position = tail.end()
            continue
        raise BlockError(f"not a SIA event block at {block[position : position + 20]!r}")
    if not events:
        raise BlockError("a SIA block without an event code")
    if text_tail and events[-1].text is None:
        last = events[-1]
        events[-1] = PanelEvent(
            system="sia", code=last.code, zone=last.zone, group=last.group, text=text_tail
        )
    return events
