"""The home-visit settings of the rules file (``[visits]``): when a welfare alert nobody closed
becomes a visit, the routine visits per category of elder, and when an overdue visit goes to
the supervisors. Validated at load like the rest of ``alerting/rules.py``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from alerting.model import AlertType
from devices.elders import ElderCategory

DAY_S = 86_400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoutineVisits(_Strict):
    """Visit every elder who is in *all* of ``categories`` every ``every_days`` days."""

    categories: Annotated[list[ElderCategory], Field(min_length=1)]
    every_days: Annotated[int, Field(ge=1, le=366)]


class VisitRules(_Strict):
    # An alert resolved visit_needed: the visit is due this long after.
    followup_due_h: Annotated[int, Field(ge=1, le=24 * 30)] = 24
    # A welfare alert of these types still open this long after it was raised becomes a visit
    # (once per alert), due welfare_due_h later. 0: never.
    welfare_after_s: Annotated[int, Field(ge=0, le=7 * DAY_S)] = 4 * 3600
    welfare_types: list[AlertType] = Field(
        default_factory=lambda: [
            AlertType.INACTIVITY,
            AlertType.CHECKIN_MISSED,
            AlertType.BED_NOT_VACATED,
            AlertType.DEVICE_OFFLINE,
        ]
    )
    welfare_due_h: Annotated[int, Field(ge=1, le=24 * 7)] = 4
    # A routine visit is requested this long before it is due.
    routine_lead_h: Annotated[int, Field(ge=0, le=24 * 30)] = 24
    routine: list[RoutineVisits] = Field(default_factory=list)
    # An open visit this long past its due time goes to the supervisors (once). 0: never.
    overdue_after_s: Annotated[int, Field(ge=0, le=30 * DAY_S)] = 3600

    @property
    def followup_due(self) -> timedelta:
        return timedelta(hours=self.followup_due_h)
