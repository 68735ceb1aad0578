"""The alert lifecycle: what a dispatcher may do to an alert, and doing it atomically.

The state machine is a pure table (``TRANSITIONS``): for each action, the statuses it may start
from and the status it leads to. ``new → claimed → acknowledged → (escalated) → resolved``, with
``cancelled`` and ``resolved`` terminal; a note may be added at any time.

The store functions apply an action in the caller's transaction and append it to the timeline
(actor, the injected ``now``, a detail); the caller commits, and only then tells the device
(``ActionResult.ack``) and the change feed. Every change of status is a compare-and-set: an
``UPDATE … WHERE id = :id AND status = :seen AND claimed_by = :seen_holder`` whose row count says
whether this transaction won. That is correct on SQLite (writers queue on the database lock, and
the update reads the latest commit) and on PostgreSQL (a second writer waits on the row lock,
then re-checks the condition against the committed row) without ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from alerting import visit_store
from alerting.compare_and_set import compare_and_set
from alerting.model import AlertStatus, Outcome
from alerting.store import AlertChange, AlertEventRow, AlertRow, ChangeKind
from alerting.visits import FOLLOWUP_VISIT_DUE, VisitReason
from devices.payloads import AckPayload, AckStatus

# What the device says to the elder (contract §1 Ack), in the elder's language.
CLAIMED_MESSAGE = "调度员已接到您的呼叫，正在处理。"
HELP_COMING_MESSAGE = "工作人员正在赶来，请保持冷静。"
RESOLVED_MESSAGE = "您的呼叫已处理完毕。如需帮助，请再次呼叫。"

NOTE_MAX_CHARS = 2000
REASON_MAX_CHARS = 500

# A compare-and-set that keeps losing means others keep changing the alert: give up with a
# conflict rather than loop.
_MAX_ATTEMPTS = 5


class Action(StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    ACKNOWLEDGE = "acknowledge"
    NOTE = "note"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    # Not dispatchers' actions: the system closes an alert whose condition is gone, a device
    # withdraws one (the store's ``close_open`` carries these out). Listed so that the table is
    # the whole state machine.
    AUTO_RESOLVE = "auto_resolve"
    CANCEL = "cancel"


_N, _C, _A, _E, _R, _X = (
    AlertStatus.NEW,
    AlertStatus.CLAIMED,
    AlertStatus.ACKNOWLEDGED,
    AlertStatus.ESCALATED,
    AlertStatus.RESOLVED,
    AlertStatus.CANCELLED,
)

TRANSITIONS: Mapping[Action, Mapping[AlertStatus, AlertStatus]] = {
    # An alert the system escalated because nobody claimed it has no holder: claiming it is
    # what the escalation asked for, and it becomes an ordinary claimed alert (its timeline
    # and ``escalated_at`` keep the escalation). One a person escalated is held: a conflict.
    Action.CLAIM: {_N: _C, _E: _C},
    Action.RELEASE: {_C: _N, _A: _N, _E: _N},
    # An escalated alert stays escalated: telling the device does not undo the escalation.
    Action.ACKNOWLEDGE: {_C: _A, _E: _E},
    Action.NOTE: {status: status for status in AlertStatus},
    Action.ESCALATE: {_C: _E, _A: _E},
    Action.RESOLVE: {_C: _R, _A: _R, _E: _R},
    Action.AUTO_RESOLVE: {_N: _R, _C: _R, _A: _R, _E: _R},
    Action.CANCEL: {_N: _X, _C: _X, _A: _X, _E: _X},
}
"""Action → (status it may start from → status it leads to). Anything else is refused."""

HELD_STATUSES = frozenset({_C, _A, _E})
"""Statuses in which the alert has a holder (``claimed_by``)."""

HOLDER_ACTIONS = frozenset({Action.RELEASE, Action.ACKNOWLEDGE, Action.ESCALATE, Action.RESOLVE})
"""Actions on a claimed alert that only its holder may take, unless the caller may override
(a supervisor or an admin: the API decides who that is)."""

# The word the timeline uses for each action.
TIMELINE_ACTION: Mapping[Action, str] = {
    Action.CLAIM: "claimed",
    Action.RELEASE: "released",
    Action.ACKNOWLEDGE: "acknowledged",
    Action.NOTE: "note",
    Action.ESCALATE: "escalated",
    Action.RESOLVE: "resolved",
    Action.AUTO_RESOLVE: "auto_resolved",
    Action.CANCEL: "cancelled",
}
DEVICE_NOT_TOLD = "device_not_told"


# Errors. Only api/ turns them into HTTP statuses.


class LifecycleError(Exception):
    """An action on an alert was refused."""


class AlertNotFound(LifecycleError):  # noqa: N818 - named for what it says
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"alert {alert_id} not found")
        self.alert_id = alert_id


class Conflict(LifecycleError):  # noqa: N818
    """The alert's current state does not allow the action."""


class ClaimConflict(Conflict):
    """Someone else holds the alert."""

    def __init__(self, alert_id: int, holder: str) -> None:
        super().__init__(f"alert {alert_id} is already claimed by {holder}")
        self.alert_id, self.holder = alert_id, holder


class InvalidTransition(Conflict):
    """The action cannot start from the alert's status (resolve twice, acknowledge a new one)."""

    def __init__(self, alert_id: int, action: Action, status: AlertStatus) -> None:
        allowed = ", ".join(s.value for s in TRANSITIONS[action]) or "none"
        super().__init__(
            f"cannot {action.value} alert {alert_id}: it is {status.value} (only from: {allowed})"
        )
        self.alert_id, self.action, self.status = alert_id, action, status


class InvalidInput(LifecycleError, ValueError):  # noqa: N818
    """A note or reason that is empty or too long."""


class NotHolder(LifecycleError):  # noqa: N818
    """The alert is held by someone else, and the caller may not override them."""

    def __init__(self, alert_id: int, action: Action, holder: str | None) -> None:
        who = f"held by {holder}" if holder else "not claimed by you"
        super().__init__(
            f"cannot {action.value} alert {alert_id}: it is {who}; "
            "only its holder, a supervisor or an admin may"
        )
        self.alert_id, self.action, self.holder = alert_id, action, holder


# The pure part.


def next_status(alert_id: int, action: Action, current: AlertStatus) -> AlertStatus:
    """The status ``action`` leads to from ``current``; InvalidTransition if it may not."""
    to = TRANSITIONS[action].get(current)
    if to is None:
        raise InvalidTransition(alert_id, action, current)
    return to


def check_holder(
    alert_id: int, action: Action, holder: str | None, actor: str, *, may_override: bool
) -> None:
    """NotHolder unless ``actor`` holds the alert, may override, or the action needs no holder."""
    if action in HOLDER_ACTIONS and holder != actor and not may_override:
        raise NotHolder(alert_id, action, holder)


# The store functions: in the caller's transaction, the caller commits.


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionResult:
    """What an action did: the alert as it is now, and what the caller tells whom after commit."""

    alert: AlertRow
    # None when nothing changed (claiming an alert one already holds).
    change: AlertChange | None
    # The Ack the device must get once the transaction is committed, if any.
    ack: AckPayload | None = None


def claim(session: Session, alert_id: int, *, actor: str, now: datetime) -> ActionResult:
    """Take the alert. Exactly one of several concurrent claimers wins; the others get a
    ClaimConflict naming the holder. Claiming an alert one already holds changes nothing.
    The winner's caller tells the device (``ack`` ``claimed``: a dispatcher has the call)."""
    for _ in range(_MAX_ATTEMPTS):
        row = _load(session, alert_id)
        current = AlertStatus(row.status)
        if current in HELD_STATUSES and row.claimed_by is not None:
            if row.claimed_by == actor:
                return ActionResult(alert=row, change=None)
            raise ClaimConflict(alert_id, row.claimed_by)
        next_status(alert_id, Action.CLAIM, current)  # resolved or cancelled: refused
        detail = {} if current is AlertStatus.NEW else {"from": current.value}
        if _compare_and_set(
            session,
            row,
            current,
            status=AlertStatus.CLAIMED,
            claimed_by=actor,
            claimed_at=now,
            updated_at=now,
        ):
            ack = AckPayload(alert_id=alert_id, status=AckStatus.CLAIMED, message=CLAIMED_MESSAGE)
            detail["ack"] = ack.status.value
            return _done(session, row, Action.CLAIM, actor, now, detail, ack)
    raise Conflict(f"alert {alert_id} is being changed by others: try again")


def release(
    session: Session, alert_id: int, *, actor: str, now: datetime, may_override: bool
) -> ActionResult:
    """Give the alert back to the queue (status new, no holder); its claim deadline (the
    escalation's) counts again from now."""
    return _transition(
        session,
        alert_id,
        Action.RELEASE,
        actor=actor,
        now=now,
        may_override=may_override,
        values={"claimed_by": None, "claimed_at": None, "queued_at": now},
        detail=lambda row: {"holder": row.claimed_by},
    )


def acknowledge(
    session: Session, alert_id: int, *, actor: str, now: datetime, may_override: bool
) -> ActionResult:
    """Tell the device help is coming: the caller sends ``ack`` after the commit."""
    return _transition(
        session,
        alert_id,
        Action.ACKNOWLEDGE,
        actor=actor,
        now=now,
        may_override=may_override,
        ack=(AckStatus.HELP_COMING, HELP_COMING_MESSAGE),
    )


def escalate(
    session: Session,
    alert_id: int,
    *,
    actor: str,
    now: datetime,
    reason: str,
    may_override: bool,
) -> ActionResult:
    """Hand the alert up: status escalated, for a supervisor to see. The holder keeps it."""
    _check_text("reason", reason, REASON_MAX_CHARS)
    return _transition(
        session,
        alert_id,
        Action.ESCALATE,
        actor=actor,
        now=now,
        may_override=may_override,
        detail=lambda _row: {"reason": reason},
    )


def resolve(
    session: Session,
    alert_id: int,
    *,
    actor: str,
    now: datetime,
    outcome: Outcome,
    note: str | None,
    may_override: bool,
    visit_due: timedelta = FOLLOWUP_VISIT_DUE,
) -> ActionResult:
    """Close the alert with an outcome; the device is told it is resolved. ``visit_needed``
    also requests a home visit for the alert's elder, due ``visit_due`` from now, in the same
    transaction (an alert with no known elder cannot be closed so: nobody knows the door)."""
    detail: dict[str, Any] = {"outcome": outcome.value}
    if note is not None and note.strip():  # a blank note is no note
        _check_text("note", note, NOTE_MAX_CHARS)
        detail["note"] = note
    if outcome is Outcome.VISIT_NEEDED:
        elder_id = _load(session, alert_id).elder_id
        if elder_id is None:
            raise InvalidInput(f"alert {alert_id} has no registered elder to visit")
        result = _transition(
            session,
            alert_id,
            Action.RESOLVE,
            actor=actor,
            now=now,
            may_override=may_override,
            values={"resolved_at": now, "outcome": outcome.value},
            detail=lambda _row: detail,
            ack=(AckStatus.RESOLVED, RESOLVED_MESSAGE),
        )
        visit_store.request_visit(
            session,
            elder_id=elder_id,
            reason=VisitReason.ALERT_FOLLOWUP,
            due_at=now + visit_due,
            actor=actor,
            now=now,
            alert_id=alert_id,
            notes=detail.get("note"),
        )
        return result
    return _transition(
        session,
        alert_id,
        Action.RESOLVE,
        actor=actor,
        now=now,
        may_override=may_override,
        values={"resolved_at": now, "outcome": outcome.value},
        detail=lambda _row: detail,
        ack=(AckStatus.RESOLVED, RESOLVED_MESSAGE),
    )


def add_note(
    session: Session, alert_id: int, *, actor: str, now: datetime, text: str
) -> ActionResult:
    """A line of text on the timeline, at any time (a resolved alert too)."""
    _check_text("text", text, NOTE_MAX_CHARS)
    row = _load(session, alert_id)
    # A note changes no status: no compare-and-set, only the time the alert last changed.
    session.execute(
        update(AlertRow)
        .where(AlertRow.id == alert_id)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _done(session, row, Action.NOTE, actor, now, {"text": text})


def record_device_not_told(
    session: Session, alert_id: int, *, actor: str, now: datetime, ack: AckPayload, reason: str
) -> None:
    """The timeline says that the device did not get ``ack`` (no downlink, or sending failed)."""
    _log(
        session,
        alert_id,
        now,
        DEVICE_NOT_TOLD,
        actor,
        {"ack": ack.status.value, "reason": reason},
    )


# Helpers.


def _transition(
    session: Session,
    alert_id: int,
    action: Action,
    *,
    actor: str,
    now: datetime,
    may_override: bool,
    values: Mapping[str, Any] | None = None,
    detail: Callable[[AlertRow], Mapping[str, Any]] | None = None,
    ack: tuple[AckStatus, str] | None = None,
) -> ActionResult:
    for _ in range(_MAX_ATTEMPTS):
        row = _load(session, alert_id)
        current = AlertStatus(row.status)
        target = next_status(alert_id, action, current)
        check_holder(alert_id, action, row.claimed_by, actor, may_override=may_override)
        entry: dict[str, Any] = dict(detail(row)) if detail is not None else {}
        if target is not current:
            entry["from"] = current.value
        if _compare_and_set(
            session, row, current, status=target, updated_at=now, **dict(values or {})
        ):
            payload = None
            if ack is not None:
                payload = AckPayload(alert_id=alert_id, status=ack[0], message=ack[1])
                entry["ack"] = payload.status.value
            return _done(session, row, action, actor, now, entry, payload)
    raise Conflict(f"alert {alert_id} is being changed by others: try again")


def _load(session: Session, alert_id: int) -> AlertRow:
    # populate_existing: read what is committed now, not what this session saw before.
    row = session.get(AlertRow, alert_id, populate_existing=True)
    if row is None:
        raise AlertNotFound(alert_id)
    return row


def _compare_and_set(
    session: Session, seen: AlertRow, seen_status: AlertStatus, **values: Any
) -> bool:
    """Write ``values`` only if the alert still has the status and holder we read."""
    return compare_and_set(
        session,
        AlertRow,
        seen.id,
        status=AlertRow.status,
        seen_status=seen_status.value,
        holder=AlertRow.claimed_by,
        seen_holder=seen.claimed_by,
        values={k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()},
    )


def _done(
    session: Session,
    row: AlertRow,
    action: Action,
    actor: str,
    now: datetime,
    detail: Mapping[str, Any],
    ack: AckPayload | None = None,
) -> ActionResult:
    _log(session, row.id, now, TIMELINE_ACTION[action], actor, detail)
    session.flush()
    session.refresh(row)
    change = AlertChange(
        alert_id=row.id, kind=ChangeKind.UPDATED, device_id=row.device_id, type=row.type
    )
    return ActionResult(alert=row, change=change, ack=ack)


def _log(
    session: Session,
    alert_id: int,
    at: datetime,
    action: str,
    actor: str,
    detail: Mapping[str, Any],
) -> None:
    session.add(
        AlertEventRow(alert_id=alert_id, at=at, action=action, actor=actor, detail=dict(detail))
    )


def _check_text(name: str, text: str, max_chars: int) -> None:
    if not text.strip():
        raise InvalidInput(f"{name} must not be empty")
    if len(text) > max_chars:
        raise InvalidInput(f"{name}: at most {max_chars} characters")
