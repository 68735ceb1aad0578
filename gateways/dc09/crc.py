"""CRC-16/ARC, the checksum of DC-09 frames (poly 0x8005 reflected, init 0, no final XOR)."""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _table()


def crc16_arc(data: bytes) -> int:
    """``crc16_arc(b"123456789") == 0xBB3D``."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc
