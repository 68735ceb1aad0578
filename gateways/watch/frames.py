"""Framing of the watch protocol: bytes of a TCP stream ↔ frames. Pure, no I/O.

A frame is ``[vendor*id*[index*]len*content]`` (docs/watch-gateway.md). :class:`Framer` cuts
frames out of a stream fed in arbitrary pieces: several frames in one read, one frame split
across reads, junk before a ``[`` (skipped and counted), brackets nested inside a frame (a
WiFi name such as ``[LG_Wall-Mount A/C]``). :func:`parse_frame` splits one frame into its
header and content, :func:`encode_frame` builds one to send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

OPEN, CLOSE, ESCAPE = 0x5B, 0x5D, 0x7D
# 0x7D starts a two-byte escape inside a frame (the vendor document's table).
_UNESCAPE = {0x01: 0x7D, 0x02: 0x5B, 0x03: 0x5D, 0x04: 0x2C, 0x05: 0x2A}
_ESCAPE = {value: bytes((ESCAPE, code)) for code, value in _UNESCAPE.items()}

# Traccar's bound; the longest real frames (voice chunks) are about 1 KiB.
DEFAULT_MAX_FRAME = 32 * 1024

_VENDOR = re.compile(rb"[A-Za-z0-9]{1,4}")
_ID = re.compile(rb"[0-9]{6,20}")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
# A plausible frame start: what a ``]`` deep inside a frame is followed by when the frame
# really ended there (a WiFi name with an unmatched ``[`` left the depth above zero).
_FRAME_START = re.compile(rb"\[[A-Za-z0-9]{1,4}\*[0-9]{6,20}\*")


class FramingProblem(StrEnum):
    """Why bytes of the stream did not make a frame."""

    JUNK = "junk"  # bytes outside any frame, skipped
    TOO_LARGE = "too_large"  # no end within the size bound; dropped


@dataclass(frozen=True, kw_only=True, slots=True)
class Skipped:
    """Bytes of the stream that are not a frame, and why."""

    problem: FramingProblem
    size: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RawFrame:
    """One frame as it came, brackets included, still escaped."""

    data: bytes


class Framer:
    """Cuts frames out of a byte stream; feed it what each read returns."""

    __slots__ = ("_buffer", "_depth", "_max", "_scan", "_start")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 16:
            raise ValueError("max_frame: at least 16 bytes")
        self._max = max_frame
        self._buffer = bytearray()
        self._depth = 0  # bracket depth of the frame being read; 0: between frames
        self._scan = 0  # where scanning resumes in the buffer
        self._start = 0  # where the frame being read starts

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RawFrame | Skipped]:
        """The frames (and skipped stretches) completed by ``data``, in stream order."""
        out: list[RawFrame | Skipped] = []
        buffer = self._buffer
        buffer += data
        i = self._scan
        while i < len(buffer):
            if self._depth == 0:
                start = buffer.find(OPEN, i)
                if start < 0:
                    out.append(Skipped(problem=FramingProblem.JUNK, size=len(buffer)))
                    buffer.clear()
                    i = 0
                    break
                if start:
                    out.append(Skipped(problem=FramingProblem.JUNK, size=start))
                    del buffer[:start]
                self._start, self._depth, i = 0, 1, 1
                continue
            byte = buffer[i]
            if byte == OPEN:
                self._depth += 1
            elif byte == CLOSE:
                self._depth -= 1
                if self._depth == 0 or self._ends_here(buffer, i):
                    out.append(RawFrame(data=bytes(buffer[: i + 1])))
                    del buffer[: i + 1]
                    self._depth, i = 0, 0
                    continue
            i += 1
            if self._depth and i > self._max:
                out.append(Skipped(problem=FramingProblem.TOO_LARGE, size=i))
                del buffer[:i]
                self._depth, i = 0, 0
        if self._depth and len(buffer) > self._max:
            out.append(Skipped(problem=FramingProblem.TOO_LARGE, size=len(buffer)))
            buffer.clear()
            self._depth, i = 0, 0
        self._scan = i
        return out

    @staticmethod
    def _ends_here(buffer: bytearray, i: int) -> bool:
        """A ``]`` while still nested: the frame ends here anyway if what follows is the
        start of the next frame (an unmatched ``[`` inside a WiFi name)."""
        return _FRAME_START.match(buffer, i + 1) is not None


class FrameError(ValueError):
    """A frame whose header cannot be read; the message says what is wrong."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    """A frame split into its parts. ``content`` is unescaped; ``wire_length`` is the length
    of the content as it was on the wire (escaped), which is what the length field counts."""

    vendor: str
    device_id: str
    index: str | None
    declared_length: int | None
    wire_length: int
    content: bytes

    @property
    def length_ok(self) -> bool:
        return self.declared_length == self.wire_length

    @property
    def type(self) -> str:
        """The message type: the content up to the first ``,`` (``LK``, ``UD_LTE``, ``AL``)."""
        head = self.content.split(b",", 1)[0]
        return head.decode("ascii", "replace").strip()


def parse_frame(raw: bytes) -> Frame:
    """Split one frame, ``[`` to ``]``, into its parts; :class:`FrameError` if it has none."""
    if len(raw) < 2 or raw[0] != OPEN or raw[-1] != CLOSE:
        raise FrameError("not a bracketed frame")
    inner = raw[1:-1]
    parts = inner.split(b"*", 4)
    if len(parts) < 4:
        raise FrameError("header: fewer than four '*'-separated fields")
    vendor, device_id = parts[0], parts[1]
    if not _VENDOR.fullmatch(vendor):
        raise FrameError("header: vendor is not 1-4 letters or digits")
    if not _ID.fullmatch(device_id):
        raise FrameError("header: id is not 6-20 digits")
    index: bytes | None = None
    # ZJ watches put a 4-hex-digit index before the length: [ZJ*id*0033*0064*UD,…].
    if len(parts) == 5 and _HEX4.fullmatch(parts[2]) and _HEX4.fullmatch(parts[3]):
        index, length, content = parts[2], parts[3], parts[4]
    else:
        length = parts[2]
        content = inner[len(vendor) + len(device_id) + len(length) + 3 :]
    if len(length) > 8:
        raise FrameError("header: length field longer than 8 characters")
    return Frame(
        vendor=vendor.decode("ascii"),
        device_id=device_id.decode("ascii"),
        index=None if index is None else index.decode("ascii"),
        # Not 4 hex digits (the vendor document's own example says "len"): a wrong length,
        # counted like any other, never a reason to refuse the frame.
        declared_length=int(length, 16) if _HEX4.fullmatch(length) else None,
        wire_length=len(content),
        content=unescape(content),
    )


def unescape(data: bytes) -> bytes:
    """``7D 01``…``7D 05`` back to the bytes they stand for. A ``7D`` before any other byte
    (or at the end) is kept as it is: lenient, since text frames never escape."""
    if ESCAPE not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte == ESCAPE and i + 1 < n and data[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[data[i + 1]])
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def escape(data: bytes) -> bytes:
    """The bytes ``] [ , * }`` as their two-byte escapes (binary content sent down)."""
    if not any(byte in _ESCAPE for byte in data):
        return data
    return b"".join(_ESCAPE.get(byte, bytes((byte,))) for byte in data)


def encode_frame(
    vendor: str, device_id: str, content: bytes | str, *, index: str | None = None
) -> bytes:
    """A frame to send: the length is that of ``content`` as given (already escaped where it
    must be), 4 upper-case hex digits as in the vendor document's examples."""
    body = content.encode("ascii") if isinstance(content, str) else content
    if len(body) > 0xFFFF:
        raise ValueError("content: longer than the length field can say (65535)")
    head = f"[{vendor}*{device_id}*" + (f"{index}*" if index is not None else "")
    return head.encode("ascii") + f"{len(body):04X}*".encode("ascii") + body + b"]"
