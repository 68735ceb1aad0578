"""The device side of an SOS (contract §1): publish it again, with the same ``seq``, every
``resend_s`` seconds until its Ack ``received`` arrives. Sans-I/O: presses and Acks in, the
messages due again out; the live fleet (simulators/live.py) does the sending.

An Ack names its press by ``seq`` (ingest echoes the SOS's seq); an Ack without one (an older
anxin) answers the device's oldest open press.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

RESEND_EVERY_S = 10.0


@dataclass(kw_only=True, slots=True)
class _Open:
    topic: str
    payload: bytes
    seq: int | None
    last_sent: float


class SosResends:
    def __init__(self, resend_s: float = RESEND_EVERY_S) -> None:
        self.resend_s = resend_s
        self._open: dict[str, list[_Open]] = {}  # by device, oldest press first
        self.resent = 0
        self.answered = 0

    def pressed(self, device_id: str, topic: str, payload: bytes, now: float) -> None:
        """An SOS was published (the first time)."""
        seq: int | None = None
        try:
            value = json.loads(payload).get("seq")
            seq = value if isinstance(value, int) else None
        except (ValueError, AttributeError):
            pass
        self._open.setdefault(device_id, []).append(
            _Open(topic=topic, payload=payload, seq=seq, last_sent=now)
        )

    def acked(self, device_id: str, payload: bytes) -> bool:
        """An Ack came on the device's downlink; True when it answered an open press."""
        try:
            ack = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(ack, dict) or ack.get("status") != "received":
            return False
        presses = self._open.get(device_id)
        if not presses:
            return False
        seq = ack.get("seq")
        index = next(
            (i for i, p in enumerate(presses) if isinstance(seq, int) and p.seq == seq),
            0 if not isinstance(seq, int) else None,
        )
        if index is None:
            return False
        del presses[index]
        if not presses:
            del self._open[device_id]
        self.answered += 1
        return True

    def due(self, now: float) -> list[tuple[str, str, bytes]]:
        """(device, topic, payload) of every press unanswered for ``resend_s``: send them now."""
        out = []
        for device_id, presses in self._open.items():
            for press in presses:
                if now - press.last_sent >= self.resend_s:
                    press.last_sent = now
                    out.append((device_id, press.topic, press.payload))
        self.resent += len(out)
        return out

    @property
    def unanswered(self) -> int:
        return sum(len(presses) for presses in self._open.values())
