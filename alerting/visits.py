"""Home visits (巡访): the names and the state machine, pure.

A visit is someone going to an elder's door: ``open`` (requested, nobody yet) → ``assigned``
(a community worker has it) → ``done`` with an outcome; ``cancelled`` when it is no longer
needed. ``done`` and ``cancelled`` are terminal. A visit is requested in four ways (``Reason``):
an alert resolved ``visit_needed``, a welfare alert nobody closed in time, a routine schedule
per category of elder, or by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum

# An alert resolved visit_needed asks for a visit within a day (the rules file's
# [visits] followup_due_h, where the process has the rules).
FOLLOWUP_VISIT_DUE = timedelta(hours=24)


class VisitReason(StrEnum):
    ALERT_FOLLOWUP = "alert_followup"  # an alert resolved with the outcome visit_needed
    WELFARE = "welfare"  # a welfare alert nobody closed after a set time
    ROUTINE = "routine"  # the rules file's schedule for a category of elder
    MANUAL = "manual"  # by hand: POST /api/v1/visits


class VisitStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    DONE = "done"
    CANCELLED = "cancelled"


OPEN_VISIT_STATUSES = frozenset({VisitStatus.OPEN, VisitStatus.ASSIGNED})


class VisitOutcome(StrEnum):
    WELL = "well"
    NEEDED_HELP = "needed_help"  # raises a visit_needed_help alert for the elder
    NOT_HOME = "not_home"
    HOSPITAL = "hospital"
    DECEASED = "deceased"
    OTHER = "other"


class VisitAction(StrEnum):
    ASSIGN = "assign"  # to a named worker, or to oneself (claim); reassigning is allowed
    COMPLETE = "complete"
    CANCEL = "cancel"
    NOTE = "note"


_O, _A, _D, _X = VisitStatus.OPEN, VisitStatus.ASSIGNED, VisitStatus.DONE, VisitStatus.CANCELLED

TRANSITIONS: Mapping[VisitAction, Mapping[VisitStatus, VisitStatus]] = {
    VisitAction.ASSIGN: {_O: _A, _A: _A},
    # A worker who finds an open visit on the list and goes completes it: no claim first.
    VisitAction.COMPLETE: {_O: _D, _A: _D},
    VisitAction.CANCEL: {_O: _X, _A: _X},
    VisitAction.NOTE: {status: status for status in VisitStatus},
}
"""Action → (status it may start from → status it leads to). Anything else is refused."""

# The word each step leaves on the visit's (and so the elder's) timeline.
REQUESTED = "requested"
OVERDUE_ESCALATED = "overdue_escalated"
TIMELINE_ACTION: Mapping[VisitAction, str] = {
    VisitAction.ASSIGN: "assigned",
    VisitAction.COMPLETE: "done",
    VisitAction.CANCEL: "cancelled",
    VisitAction.NOTE: "note",
}

NOTE_MAX_CHARS = 2000


class VisitError(Exception):
    """An action on a visit was refused."""


class VisitNotFound(VisitError):  # noqa: N818 - named for what it says
    def __init__(self, visit_id: int) -> None:
        super().__init__(f"visit {visit_id} not found")
        self.visit_id = visit_id


class VisitConflict(VisitError):  # noqa: N818
    """The visit's status does not allow the action, or someone else holds it."""


class InvalidVisitTransition(VisitConflict):
    def __init__(self, visit_id: int, action: VisitAction, status: VisitStatus) -> None:
        allowed = ", ".join(s.value for s in TRANSITIONS[action]) or "none"
        super().__init__(
            f"cannot {action.value} visit {visit_id}: it is {status.value} (only from: {allowed})"
        )


class NotAssignee(VisitError):  # noqa: N818
    """The visit is assigned to someone else and the caller may not override them."""

    def __init__(self, visit_id: int, action: VisitAction, assignee: str) -> None:
        super().__init__(
            f"cannot {action.value} visit {visit_id}: it is assigned to {assignee}; "
            "only they, a dispatcher, a supervisor or an admin may"
        )


class InvalidVisit(VisitError, ValueError):  # noqa: N818
    """A visit that cannot be made as asked (no such elder, an assignee who may not go)."""


def next_status(visit_id: int, action: VisitAction, current: VisitStatus) -> VisitStatus:
    """The status ``action`` leads to from ``current``; InvalidVisitTransition if it may not."""
    to = TRANSITIONS[action].get(current)
    if to is None:
        raise InvalidVisitTransition(visit_id, action, current)
    return to
