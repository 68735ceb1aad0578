"""Frames out of a TCP byte stream, delimited by their length field. No I/O.

A frame is ``LF <crc> <0LLL> <body> CR``: the CRC is 4 hex digits, or 2 raw bytes in the
binary-CRC variant (Lupusec and others), and the length counts the body. TCP keeps no
boundaries: one read may hold half a frame or several; senders may put NUL bytes after the CR.
Bytes before a frame's LF are dropped (counted in :attr:`FrameReader.dropped`).
"""

from __future__ import annotations

from dataclasses import dataclass

LF, CR, QUOTE = 0x0A, 0x0D, 0x22
MAX_BODY = 0x0FFF  # the standard's length field is "0LLL"
_HEX = frozenset(b"0123456789ABCDEFabcdef")
# Header: LF + 4 hex CRC + 4 hex length; binary: LF + 2 bytes + 4 hex length.
ASCII_HEADER, BINARY_HEADER = 9, 7
MAX_FRAME = ASCII_HEADER + MAX_BODY + 1


def _hex(chunk: bytes) -> bool:
    return len(chunk) > 0 and all(byte in _HEX for byte in chunk)


def header_size(data: bytes) -> int | None:
    """9 (hex CRC) or 7 (binary CRC) when ``data`` starts like a frame, else None.

    Needs 10 bytes; the two layouts cannot both match (byte 7 is a hex digit in one and the
    opening quote in the other)."""
    if len(data) > ASCII_HEADER and _hex(data[1:9]) and data[9] == QUOTE:
        return ASCII_HEADER
    if len(data) > BINARY_HEADER and _hex(data[3:7]) and data[7] == QUOTE:
        return BINARY_HEADER
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Chunk:
    """A delimited frame (``reason`` None) or bytes that cannot be one, with why."""

    data: bytes
    reason: str | None = None


class FrameReader:
    """Feed it what a connection reads; it returns the frames complete so far, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped = 0  # bytes outside any frame (NULs after CR, noise)
        # More than a frame's worth of bytes without a frame in them: the stream is lost.
        self.overflowed = False

    def feed(self, data: bytes) -> list[Chunk]:
        self._buffer += data
        chunks: list[Chunk] = []
        while (chunk := self._next()) is not None:
            chunks.append(chunk)
        return chunks

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _next(self) -> Chunk | None:
        buffer = self._buffer
        start = buffer.find(LF)
        if start < 0:
            self.dropped += len(buffer)
            buffer.clear()
            return None
        if start:
            self.dropped += start
            del buffer[:start]
        # Not enough to tell; unless a CR or the next LF says it is over already.
        # (The two bytes of a binary CRC may be CR or LF themselves.)
        if len(buffer) < ASCII_HEADER + 1 and _end_of_garbage(buffer, 3) is None:
            return None
        size = header_size(bytes(buffer[: ASCII_HEADER + 1]))
        if size is None:
            return self._garbage("not a DC-09 frame header")
        length = int(buffer[size - 4 : size], 16)
        if length > MAX_BODY:
            return self._garbage(f"length {length} over {MAX_BODY}")
        end = size + length  # index of the CR
        early = _frame_restart(buffer, size, min(end, len(buffer)))
        if early is not None:
            return self._take(early, "length does not match the frame")
        if len(buffer) <= end:
            return None
        if buffer[end] != CR:
            return self._garbage("length does not match the frame")
        return self._take(end + 1, None)

    def _garbage(self, reason: str) -> Chunk | None:
        end = _end_of_garbage(self._buffer)
        if end is None:
            if len(self._buffer) > MAX_FRAME:
                self.overflowed = True
                return self._take(len(self._buffer), reason)
            return None
        return self._take(end, reason)

    def _take(self, size: int, reason: str | None) -> Chunk:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return Chunk(data=data, reason=reason)


def _end_of_garbage(buffer: bytearray, start: int = 1) -> int | None:
    """Where bytes that are not a frame end: after the next CR, or before the next LF."""
    cr = buffer.find(CR, start)
    lf = buffer.find(LF, start)
    if lf >= 0 and (cr < 0 or lf < cr):
        return lf
    if cr >= 0:
        return cr + 1
    return None


def _frame_restart(buffer: bytearray, start: int, stop: int) -> int | None:
    """A CR followed by LF or NUL before the length says the frame ends: the frame was shorter
    than its length field (a corrupted length), and the next one has begun. Bodies are ASCII
    (plain text or hex ciphertext), so CR LF inside one is no frame's content."""
    position = start
    while (cr := buffer.find(CR, position, stop)) >= 0:
        if cr + 1 < len(buffer) and buffer[cr + 1] in (LF, 0):
            return cr + 1
        position = cr + 1
    return None
