"""anxin's downlinks (Ack, Command) as watch protocol content. Pure.

- Ack ``received``, ``claimed``, ``help_coming``, ``resolved``: ``MESSAGE,<UTF-16BE hex>`` of
  the Ack's text, which the watch shows on its screen.
- Command ``locate``: ``CR`` (GPS on for 3 min, a UD every 20 s).
- Command ``ping``: ``VERNO`` (the watch answers with its firmware version).
- Command ``configure`` ``{"upload_interval_s": N}``: ``UPLOAD,N`` (60 … 65535 s).
- Command ``configure`` ``{"measure": "heart_rate"}``: ``hrtstart,1`` (one measurement; the
  result arrives as ``bphrt``).
- Command ``configure`` ``{"gps": true}``: ``APPLOCK,DW-1`` (GPS on, for 4G watches that ship
  with it off).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from devices.payloads import AckPayload, AckStatus, CommandPayload

GPS_ON = "APPLOCK,DW-1"
# What the screen shows when an Ack comes without text (the contract's texts, shortened).
_DEFAULT_TEXT = {
    AckStatus.RECEIVED: "已收到您的呼叫，请保持冷静。",
    AckStatus.CLAIMED: "调度员正在处理您的呼叫。",
    AckStatus.HELP_COMING: "工作人员正在赶来。",
    AckStatus.RESOLVED: "您的呼叫已处理完毕。",
}
# The screen of a watch is small: longer texts are cut (UTF-16 code units).
MAX_MESSAGE_CHARS = 60
MIN_UPLOAD_S, MAX_UPLOAD_S = 60, 65535


class DownlinkError(ValueError):
    """A downlink the watch protocol cannot carry; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchCommand:
    content: str
    # What anxin asked for, for the log and the metrics.
    name: str


def utf16_hex(text: str) -> str:
    """Text as the protocol carries it: 4 upper-case hex digits per UTF-16BE code unit."""
    return text.encode("utf-16-be").hex().upper()


def message_for_ack(payload: bytes) -> WatchCommand:
    """``MESSAGE,<hex>`` for an Ack payload; :class:`DownlinkError` if it is not one."""
    try:
        ack = AckPayload.model_validate_json(payload)
    except ValidationError as exc:
        raise DownlinkError(f"ack: {exc.errors()[0]['msg']}") from exc
    text = (ack.message or _DEFAULT_TEXT[ack.status])[:MAX_MESSAGE_CHARS]
    return WatchCommand(content=f"MESSAGE,{utf16_hex(text)}", name=f"ack_{ack.status.value}")


def commands_for(payload: bytes) -> list[WatchCommand]:
    """The watch commands for a Command payload (``configure`` may carry several)."""
    try:
        command = CommandPayload.model_validate_json(payload)
    except ValidationError as exc:
        raise DownlinkError(f"command: {exc.errors()[0]['msg']}") from exc
    if command.command == "locate":
        return [WatchCommand(content="CR", name="locate")]
    if command.command == "ping":
        return [WatchCommand(content="VERNO", name="ping")]
    return _configure(command.params)


def _configure(params: Mapping[str, Any]) -> list[WatchCommand]:
    known = {"upload_interval_s", "measure", "gps"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise DownlinkError(f"configure: not something a watch does: {', '.join(unknown)}")
    out: list[WatchCommand] = []
    if "upload_interval_s" in params:
        interval = params["upload_interval_s"]
        if (
            not isinstance(interval, int)
            or isinstance(interval, bool)
            or not MIN_UPLOAD_S <= interval <= MAX_UPLOAD_S
        ):
            raise DownlinkError(
                f"configure: upload_interval_s must be an integer {MIN_UPLOAD_S}..{MAX_UPLOAD_S}"
            )
        out.append(WatchCommand(content=f"UPLOAD,{interval}", name="upload_interval"))
    if "measure" in params:
        if params["measure"] != "heart_rate":
            raise DownlinkError('configure: measure must be "heart_rate"')
        out.append(WatchCommand(content="hrtstart,1", name="measure_heart_rate"))
    if "gps" in params:
        if params["gps"] is not True:
            raise DownlinkError("configure: gps can only be turned on (true)")
        out.append(WatchCommand(content=GPS_ON, name="gps_on"))
    if not out:
        raise DownlinkError(f"configure: nothing to do in {json.dumps(dict(params))[:80]}")
    return out
