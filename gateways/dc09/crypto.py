"""AES-CBC with an all-zero IV, and DC-09's pad rule. No I/O.

The encrypted region runs from after the ``[`` of the data block through the timestamp; it is
sent as hex. Its plaintext is ``<pad>|<data>]…_<timestamp>``: pad bytes never ``|``, ``[`` or
``]``, as many as make the whole a multiple of 16 bytes (16 when it already is one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import StrEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
ZERO_IV = bytes(BLOCK)
_NOT_PAD = frozenset(b"|[]")


class KeyEncoding(StrEnum):
    # The characters of the key are its bytes (pysiaalarm, Home Assistant, Ajax, ioBroker.sia).
    TEXT = "text"
    # The hex is decoded (the Swissdotnet library, ioBroker.sia's "hex" option).
    HEX = "hex"


class BadKeyError(ValueError):
    """A key that is not 16, 24 or 32 bytes in its encoding."""


def decode_key(key: str, encoding: KeyEncoding) -> bytes:
    """The AES key bytes; raises :class:`BadKeyError` for a wrong length or bad hex."""
    if encoding is KeyEncoding.HEX:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raise BadKeyError("key: not hex digits") from None
        if len(raw) not in (16, 24, 32):
            raise BadKeyError(f"key: {len(key)} hex digits, AES needs 32, 48 or 64")
        return raw
    try:
        raw = key.encode("ascii")
    except UnicodeEncodeError:
        raise BadKeyError("key: text keys are ASCII characters") from None
    if len(raw) not in (16, 24, 32):
        raise BadKeyError(f"key: {len(raw)} characters, AES needs 16, 24 or 32")
    return raw


def random_pad(size: int) -> bytes:
    """``size`` pseudo-random bytes, none of them ``|``, ``[`` or ``]``."""
    pad = bytearray()
    while len(pad) < size:
        pad += bytes(byte for byte in os.urandom(size) if byte not in _NOT_PAD)
    return bytes(pad[:size])


def pad_size(rest: int) -> int:
    """Pad bytes before ``|`` + ``rest`` bytes: the whole a multiple of 16, never 0 pad."""
    return BLOCK - (rest + 1) % BLOCK if (rest + 1) % BLOCK else BLOCK


def encrypt(key: bytes, content: bytes, pad: Callable[[int], bytes] = random_pad) -> str:
    """``content`` (``<data>]…_<timestamp>``) → upper-case hex of AES(pad | content)."""
    padded = pad(pad_size(len(content))) + b"|" + content
    encryptor = Cipher(algorithms.AES(key), modes.CBC(ZERO_IV)).encryptor()
    return (encryptor.update(padded) + encryptor.finalize()).hex().upper()


def decrypt(key: bytes, ciphertext: bytes) -> bytes | None:
    """Hex ciphertext → the plaintext with its pad removed; None when it is not whole blocks
    of hex. A wrong key gives garbage, not None: the caller's parse of it fails."""
    try:
        raw = bytes.fromhex(ciphertext.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not raw or len(raw) % BLOCK:
        return None
    decryptor = Cipher(algorithms.AES(key), modes.CBC(ZERO_IV)).decryptor()
    return strip_pad(decryptor.update(raw) + decryptor.finalize())


def strip_pad(plain: bytes) -> bytes:
    """Everything after the first ``|`` (the pad cannot hold one). Without one (a real
    ``*NULL`` decrypts to ``ppppppppppp]_…``), the bytes before the first ``[`` or ``]``."""
    bar = plain.find(b"|")
    close = min((i for i in (plain.find(b"]"), plain.find(b"[")) if i >= 0), default=-1)
    if bar >= 0 and (close < 0 or bar < close):
        return plain[bar + 1 :]
    if close >= 0:
        return plain[close:]
    return plain
