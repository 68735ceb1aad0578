"""The receiver's decisions: a delimited frame in, what to publish and what to answer out.

Pure: the server (``server.py``) publishes the messages and sends the reply only once every
one of them is safe (PUBACKed; for an SOS, anxin's Ack ``received`` back). What is answered:

| what arrived | reply |
|---|---|
| bad CRC, bad length, a header or blocks that do not parse | NAK (never ACK) |
| unknown account, encrypted without a key, plain with a key, decrypt failure | NAK |
| a timestamp outside the window | NAK (with the receiver's time) |
| a reply id (ACK, NAK, DUH, RSP) | DUH |
| a code the account's table does not know, a data block it cannot read | DUH, a dead letter |
| NULL, and every other event | ACK (``*ACK`` when encrypted) |

A NULL's resend (``Outcome.poll``, :mod:`gateways.dc09.polls`) is ACKed without publishing
again once its first heartbeat is safe: the server keeps that memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from devices.topics import Uplink
from gateways.dc09 import replies
from gateways.dc09.accounts import Account, Accounts
from gateways.dc09.blocks import BlockError, PanelEvent, parse_cid, parse_sia, split_account
from gateways.dc09.codes import ALIVE, SOS
from gateways.dc09.content import Content, parse_content
from gateways.dc09.crypto import decrypt, random_pad
from gateways.dc09.frames import EVENT_TOKENS, Frame, FrameError, Token, parse_frame
from gateways.dc09.framing import BINARY_HEADER, header_size
from gateways.dc09.polls import Poll
from gateways.dc09.window import TimestampWindow

SEQ_MASK = 2**63 - 1
DEFAULT_WINDOW = TimestampWindow()


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """One contract message to publish for the hub's device."""

    device_id: str
    kind: Uplink
    payload: bytes
    sos_seq: int | None = None  # an SOS: the seq anxin's Ack `received` will echo
    dead_letter: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    frame_kind: str  # SIA-DCS, ADM-CID, NULL (with "*" when encrypted), or "bad"
    reply_kind: str  # ack, nak, duh
    reply: bytes
    messages: tuple[Message, ...] = ()
    problem: str | None = None  # why not ACK: crc, length, format, account, key, decrypt …
    detail: str | None = None
    account: str | None = None
    device_id: str | None = None
    poll: Poll | None = None  # a NULL with a timestamp: what recognises its resend


class Receiver:
    """Decides, for each frame, the messages and the reply."""

    def __init__(
        self,
        accounts: Accounts,
        window: TimestampWindow | None = DEFAULT_WINDOW,
        pad: Callable[[int], bytes] = random_pad,
    ) -> None:
        self.accounts = accounts
        self.window = window
        self.pad = pad

    def reject(self, data: bytes, reason: str, now: datetime) -> Outcome:
        """Bytes the stream could not delimit as a frame: a NAK."""
        return self._nak(data, now, "bad", "format", reason)

    def handle(self, raw: bytes, now: datetime) -> Outcome:
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            return self._nak(raw, now, "bad", exc.kind, str(exc))
        kind = ("*" if frame.encrypted else "") + frame.token.value
        if frame.token not in EVENT_TOKENS:
            return Outcome(
                frame_kind=kind, reply_kind="duh", reply=replies.duh(frame),
                problem="unsupported", detail=f"a {frame.token.value} is no event",
            )  # fmt: skip
        number = frame.account
        if not number and not frame.encrypted:
            # pysiaalarm's captures: no account in the header, only in the data block.
            number = split_account(frame.rest.decode("latin-1"))[0] or ""
        account = self.accounts.find(number) if number else None
        if account is None:
            return self._nak(raw, now, kind, "account", f"unknown account {number!r}")
        content = self._content(frame, account)
        if isinstance(content, str):
            problem, _, detail = content.partition(":")
            return self._nak(raw, now, kind, problem, detail.strip(), account)
        stamp, window = content.timestamp, self.window
        if stamp is not None and window is not None and not window.holds(stamp, now):
            skew = f"timestamp off by {(stamp - now).total_seconds():+.0f} s"
            return self._nak(raw, now, kind, "window", skew, account)
        return self._translate(frame, kind, account, content, now)

    def _content(self, frame: Frame, account: Account) -> Content | str:
        """The plain content, or ``"problem: detail"``."""
        if frame.encrypted:
            if account.key is None:
                return "key: an encrypted frame from an account without a key"
            plain = decrypt(account.key, frame.rest)
            if plain is None:
                return "decrypt: the encrypted region is not whole AES blocks of hex"
            try:
                content = parse_content(plain)
            except FrameError:
                return "decrypt: the decrypted content does not parse (wrong key?)"
            if content.timestamp is None:
                return "decrypt: an encrypted frame without its timestamp"
            return content
        if account.key is not None:
            return "key: a plain frame from an account with a key"
        try:
            return parse_content(frame.rest)
        except FrameError as exc:
            return f"format: {exc}"

    def _translate(
        self, frame: Frame, kind: str, account: Account, content: Content, now: datetime
    ) -> Outcome:
        ack = replies.ack(frame, now, account.key, self.pad)
        device = account.device_id
        if frame.token is Token.NULL:
            beat = Message(device_id=device, kind=Uplink.HEARTBEAT, payload=b"{}")
            outcome = self._outcome(kind, "ack", ack, (beat,), account)
            if content.timestamp is None:  # nothing tells its resend from the next poll
                return outcome
            poll = Poll(account=account.account, seq=frame.seq, timestamp=content.timestamp)
            return replace(outcome, poll=poll)
        try:
            if frame.token is Token.ADM_CID:
                events = [parse_cid(content.data)]
            else:
                events = parse_sia(content.data)
        except BlockError as exc:
            letter = self._dead_letter(frame, account, content, f"dc09: {exc}")
            return self._outcome(
                kind, "duh", replies.duh(frame), (letter,), account, "block", str(exc)
            )
        messages: list[Message] = []
        unknown: list[str] = []
        for index, event in enumerate(events):
            meaning = account.codes.meaning(event)
            name = event.cid or event.code
            if meaning is None:
                unknown.append(name)
                system = "Contact ID" if event.system == "cid" else "SIA"
                reason = f"dc09: unknown {system} code {name} (table {account.codes.name})"
                messages.append(self._dead_letter(frame, account, content, reason))
                continue
            seq = stable_seq(device, frame, content, index)
            common = _common(event, account, content, seq)
            if meaning.kind == SOS and not meaning.restore:
                payload = {**common, "trigger": "button"}
                messages.append(
                    Message(device_id=device, kind=Uplink.SOS, payload=_json(payload), sos_seq=seq)
                )
            elif meaning.kind in (SOS, ALIVE):
                # An SOS restore: the alert stays with the dispatcher; a sign of life only.
                messages.append(Message(device_id=device, kind=Uplink.HEARTBEAT, payload=b"{}"))
            else:
                state = "restore" if meaning.restore else "alarm"
                payload = {**common, "type": meaning.type, "state": state}
                messages.append(
                    Message(device_id=device, kind=Uplink.EVENT, payload=_json(payload))
                )
        if unknown:
            detail = f"unknown code {', '.join(unknown)}"
            return self._outcome(
                kind, "duh", replies.duh(frame), tuple(messages), account, "code", detail
            )
        return self._outcome(kind, "ack", ack, tuple(messages), account)

    def _dead_letter(
        self, frame: Frame, account: Account, content: Content, reason: str
    ) -> Message:
        payload = {
            "dead_letter": reason,
            "dc09": {
                "account": account.account,
                "frame": f'"{frame.token.value}"{frame.header}',
                "data": content.data,
                "extended": [ident + value for ident, value in content.extended],
            },
        }
        return Message(
            device_id=account.device_id, kind=Uplink.EVENT, payload=_json(payload), dead_letter=True
        )

    @staticmethod
    def _outcome(
        kind: str,
        reply_kind: str,
        reply: bytes,
        messages: tuple[Message, ...],
        account: Account,
        problem: str | None = None,
        detail: str | None = None,
    ) -> Outcome:
        return Outcome(
            frame_kind=kind, reply_kind=reply_kind, reply=reply, messages=messages,
            problem=problem, detail=detail, account=account.account, device_id=account.device_id,
        )  # fmt: skip

    @staticmethod
    def _nak(
        raw: bytes,
        now: datetime,
        kind: str,
        problem: str,
        detail: str,
        account: Account | None = None,
    ) -> Outcome:
        binary = header_size(raw[:10]) == BINARY_HEADER
        return Outcome(
            frame_kind=kind, reply_kind="nak", reply=replies.nak(now, binary_crc=binary),
            problem=problem, detail=detail,
            account=account.account if account else None,
            device_id=account.device_id if account else None,
        )  # fmt: skip


def stable_seq(device_id: str, frame: Frame, content: Content, index: int) -> int:
    """The contract ``seq`` of the ``index``-th event of a frame: the same for every resend of
    that frame (same account, DC-09 seq, timestamp and data), so a resend counts once."""
    stamp = content.timestamp.isoformat() if content.timestamp else ""
    key = f"{device_id}|{frame.seq}|{stamp}|{content.data}|{index}".encode("utf-8", "replace")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") & SEQ_MASK


def _common(event: PanelEvent, account: Account, content: Content, seq: int) -> dict[str, Any]:
    common: dict[str, Any] = {"seq": seq}
    if content.timestamp is not None:
        common["ts"] = content.timestamp.isoformat().replace("+00:00", "Z")
    if event.zone is not None:
        common["zone"] = event.zone
    if event.cid is not None:
        common["cid"] = event.cid
    dc09: dict[str, str] = {"account": account.account, "code": event.code}
    if event.group:
        dc09["area"] = event.group
    if event.text:
        dc09["text"] = event.text
    common["dc09"] = dc09
    return common


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
