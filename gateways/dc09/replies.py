"""The receiver's replies, exactly as the standard writes them. No I/O.

Each echoes the request's seq, ``R``, ``L`` and account as received and is framed like a
request (with a binary CRC when the request had one):

- ACK ``"ACK"<seq>R…L…#acct[]_<time>``; to an encrypted request ``"*ACK"…[<hex>`` where the
  hex is AES(``<pad>|]_<time>``);
- NAK ``"NAK"0000R0L0A0[]_<time>``: fixed fields and the receiver's time, never encrypted;
- DUH ``"DUH"<seq>R…L…#acct[]``: received correctly, but not processed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateways.dc09.content import format_timestamp
from gateways.dc09.crypto import encrypt, random_pad
from gateways.dc09.frames import Frame, build_frame


def ack(
    frame: Frame,
    now: datetime,
    key: bytes | None = None,
    pad: Callable[[int], bytes] = random_pad,
) -> bytes:
    """ACK, or ``*ACK`` when the request was encrypted (``key`` then required)."""
    stamp = format_timestamp(now)
    if frame.encrypted:
        if key is None:
            raise ValueError("an encrypted request is answered encrypted: a key is needed")
        sealed = encrypt(key, f"]{stamp}".encode(), pad)
        body = f'"*ACK"{frame.header}[{sealed}'
    else:
        body = f'"ACK"{frame.header}[]{stamp}'
    return build_frame(body, binary_crc=frame.binary_crc)


def nak(now: datetime, *, binary_crc: bool = False) -> bytes:
    return build_frame(f'"NAK"0000R0L0A0[]{format_timestamp(now)}', binary_crc=binary_crc)


def duh(frame: Frame) -> bytes:
    return build_frame(f'"DUH"{frame.header}[]', binary_crc=frame.binary_crc)
