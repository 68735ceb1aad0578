"""One DC-09 frame: its checks (CRC, length) and its header, as received. No I/O.

``LF <crc> <0LLL> "<id>"<seq>[R<rcvr>]L<pref>#<acct>[<rest> CR``: the CRC and the length cover
the body, from the opening quote of the id to the byte before CR. Receiver number, prefix and
account are kept exactly as sent (case included): replies echo them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gateways.dc09.crc import crc16_arc
from gateways.dc09.framing import ASCII_HEADER, CR, LF, header_size


class FrameError(ValueError):
    """A frame that fails its checks; ``kind`` names which (``crc``, ``length``, ``format``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Token(StrEnum):
    SIA_DCS = "SIA-DCS"
    ADM_CID = "ADM-CID"
    NULL = "NULL"
    ACK = "ACK"
    NAK = "NAK"
    DUH = "DUH"
    RSP = "RSP"


EVENT_TOKENS = frozenset({Token.SIA_DCS, Token.ADM_CID, Token.NULL})

_HEADER = re.compile(
    rb'"(?P<star>\*?)(?P<token>[A-Z][A-Z-]{1,15})"(?P<seq>\d{4})'
    rb"(?P<receiver>R[0-9A-Fa-f]{1,6}?)?(?P<prefix>L[0-9A-Fa-f]{1,6}?)?"
    rb"(?P<account>#[0-9A-Za-z]{1,16}|A[0-9]{1,4})?\["
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    token: Token
    encrypted: bool
    seq: str  # 4 digits, as sent
    receiver: str  # "R…" as sent, or ""
    prefix: str  # "L…" as sent, or ""
    account: str  # without the "#", or "" when the header has none
    rest: bytes  # everything after the "[" that opens the data block
    binary_crc: bool

    @property
    def header(self) -> str:
        """``<seq>[R…][L…][#acct]``, what a reply repeats after its own id."""
        account = f"#{self.account}" if self.account else ""
        return f"{self.seq}{self.receiver}{self.prefix}{account}"


def parse_frame(raw: bytes) -> Frame:
    """A delimited frame (see :mod:`gateways.dc09.framing`) → its header; raises FrameError."""
    if len(raw) < ASCII_HEADER + 2 or raw[0] != LF or raw[-1] != CR:
        raise FrameError("format", "a frame runs from LF to CR")
    size = header_size(raw)
    if size is None:
        raise FrameError("format", "not a DC-09 frame header")
    body = raw[size:-1]
    length = int(raw[size - 4 : size], 16)
    if length != len(body):
        raise FrameError("length", f"length field says {length}, the body has {len(body)}")
    binary = size != ASCII_HEADER
    sent = int.from_bytes(raw[1:3], "big") if binary else int(raw[1:5], 16)
    computed = crc16_arc(body)
    if sent != computed:
        raise FrameError("crc", f"CRC {sent:04X} sent, {computed:04X} computed")
    match = _HEADER.match(body)
    if match is None:
        raise FrameError("format", "the header after the length does not parse")
    try:
        token = Token(match["token"].decode())
    except ValueError:
        raise FrameError("format", f"unknown id {match['token'].decode()!r}") from None
    account = (match["account"] or b"").decode()
    return Frame(
        token=token,
        encrypted=bool(match["star"]),
        seq=match["seq"].decode(),
        receiver=(match["receiver"] or b"").decode(),
        prefix=(match["prefix"] or b"").decode(),
        account=account[1:] if account.startswith("#") else "",
        rest=body[match.end() :],
        binary_crc=binary,
    )


def build_frame(body: str | bytes, *, binary_crc: bool = False) -> bytes:
    """``LF crc 0LLL body CR`` around a body (a reply, or a simulated panel's event)."""
    data = body.encode("latin-1") if isinstance(body, str) else body
    crc = crc16_arc(data)
    head = crc.to_bytes(2, "big") if binary_crc else f"{crc:04X}".encode()
    return b"\n" + head + f"{len(data):04X}".encode() + data + b"\r"
