"""The escalation and notification settings of the rules file (``[escalation]``, ``[notify]``).

When an unclaimed alert moves up to the supervisors, how often they are reminded, and when the
elder's contacts hear of it. Validated at load like the rest of ``alerting/rules.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from alerting.model import AlertType, Priority

DAY_S = 86_400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EscalationLevel(_Strict):
    """How long an alert of one priority may wait unclaimed, and the reminders after that."""

    # Unclaimed this long (since it entered the queue): escalated. 0: never escalated.
    claim_within_s: Annotated[int, Field(ge=0, le=DAY_S)] = 0
    # Once escalated and still unclaimed: a reminder this often ...
    remind_every_s: Annotated[int, Field(ge=10, le=DAY_S)] = 60
    # ... at most this many times (0: none).
    max_reminders: Annotated[int, Field(ge=0, le=100)] = 10

    @property
    def escalates(self) -> bool:
        return self.claim_within_s > 0

    @property
    def claim_within(self) -> timedelta:
        return timedelta(seconds=self.claim_within_s)

    @property
    def remind_every(self) -> timedelta:
        return timedelta(seconds=self.remind_every_s)


class EscalationRule(_Strict):
    critical: EscalationLevel = EscalationLevel(claim_within_s=60, remind_every_s=60)
    high: EscalationLevel = EscalationLevel(claim_within_s=180, remind_every_s=180)
    medium: EscalationLevel = EscalationLevel(
        claim_within_s=1800, remind_every_s=1800, max_reminders=4
    )
    low: EscalationLevel = EscalationLevel()
    # One pass escalates, reminds or notifies at most this many alerts of each kind; the rest
    # wait for the next pass (5 s later), so a backlog never becomes one huge transaction.
    max_per_pass: Annotated[int, Field(ge=1, le=10_000)] = 200

    def level(self, priority: Priority) -> EscalationLevel:
        level: EscalationLevel = getattr(self, priority.value)
        return level


class ContactsRule(_Strict):
    """When the elder's contacts are told, in their calling order."""

    # Alerts of these types, or of these priorities, ...
    types: frozenset[AlertType] = frozenset(
        {AlertType.SOS, AlertType.FALL, AlertType.SMOKE, AlertType.GAS, AlertType.CO}
    )
    priorities: frozenset[Priority] = frozenset()
    # ... still unclaimed this long after entering the queue (0: never).
    after_unclaimed_s: Annotated[int, Field(ge=0, le=DAY_S)] = 300
    # The first this many contacts, in calling order.
    max_contacts: Annotated[int, Field(ge=1, le=10)] = 3

    def applies_to(self, alert: AlertType, priority: Priority) -> bool:
        return self.after_unclaimed_s > 0 and (alert in self.types or priority in self.priorities)

    @property
    def after_unclaimed(self) -> timedelta:
        return timedelta(seconds=self.after_unclaimed_s)


class NotifyRule(_Strict):
    # The supervisors' channel (the webhook) hears of each automatic escalation and reminder.
    supervisors: bool = True
    # More than this many supervisor notices in one pass (a backlog after an outage, a flood)
    # become one digest listing the alerts, rather than a storm of messages.
    digest_over: Annotated[int, Field(ge=1, le=1000)] = 5
    contacts: ContactsRule = ContactsRule()
    # Delivery: attempts per notification before it is given up (notify_failed), and the
    # wait before the first retry, doubled after each failed attempt, at most max_backoff_s.
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    backoff_s: Annotated[float, Field(ge=0, le=3600)] = 10
    max_backoff_s: Annotated[float, Field(ge=0, le=DAY_S)] = 600
