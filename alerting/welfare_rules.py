"""The welfare rules' settings: defaults in the rules file, by elder category, and per elder.

The rules file's ``[welfare]`` table holds the defaults and the time zone;
``[welfare.by_category.<category>]`` changes them for elders in a category; an elder's own
``welfare`` object (set through the API) changes them for that elder alone. What applies to one
elder is resolved into a :class:`WelfarePlan` (pure, cached by the engine).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from devices.catalogue import DeviceModel
from devices.elders import ElderCategory

Hours = Annotated[float, Field(ge=0, le=168, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
_TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$")


def _time_of_day(value: object) -> object:
    """``09:30`` (or ``09:30:15``), a local time without an offset; a time from TOML."""
    if isinstance(value, str) and not _TIME_OF_DAY.fullmatch(value):
        raise ValueError("a local time of day HH:MM, e.g. 09:30")
    if not isinstance(value, str | time):
        raise ValueError("a local time of day HH:MM, e.g. 09:30")
    return value


# What the API and the rules file take: exactly what the schema says (OpenAPI's "time" format
# would allow an offset, which a time of day read in the hotline's zone cannot have).
TimeOfDay = Annotated[
    time,
    BeforeValidator(_time_of_day),
    WithJsonSchema({"type": "string", "pattern": _TIME_OF_DAY.pattern, "examples": ["09:30"]}),
]

# Events that show the elder moving about: what the inactivity rule waits for.
ACTIVITY_EVENTS = frozenset(
    {"motion", "door_open", "door_close", "bed_exit", "bed_enter", "checkin"}
)
# Models whose events can tell that the elder moves (motion and door sensors): an elder needs
# one, active, to be watched for inactivity.
ACTIVITY_SENSOR_EVENTS = frozenset({"motion", "door_open", "door_close"})


class WelfareValues(BaseModel):
    """Values that a category or one elder may change; each is optional (unset: inherited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Hours without any movement before `inactivity`; 0 turns the rule off.
    inactivity_h: Hours | None = None
    # Quiet hours (local time): they do not count toward `inactivity_h` (waking hours only).
    quiet_from: TimeOfDay | None = None
    quiet_until: TimeOfDay | None = None
    # The elder opted in to the daily check-in (the green button), due by `checkin_by`.
    checkin: Flag | None = None
    checkin_by: TimeOfDay | None = None
    # The elder may wander: a door opened between `night_from` and `night_until` is an alert.
    wandering: Flag | None = None
    night_from: TimeOfDay | None = None
    night_until: TimeOfDay | None = None
    # In bed since before `night_until` and still at `up_by`: `bed_not_vacated`.
    up_by: TimeOfDay | None = None

    @field_validator(
        "quiet_from", "quiet_until", "checkin_by", "night_from", "night_until", "up_by"
    )
    @classmethod
    def _local(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("a local time of day without an offset, e.g. 09:30")
        return value

    def set_values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class WelfareRules(BaseModel):
    """The ``[welfare]`` table of the rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The hotline's local time: every time of day below is read in it (IANA name).
    timezone: str = "Asia/Shanghai"
    inactivity_h: Hours = 12.0
    quiet_from: time = time(22, 0)
    quiet_until: time = time(7, 0)
    checkin: bool = False
    checkin_by: time = time(10, 0)
    wandering: bool = False
    night_from: time = time(22, 0)
    night_until: time = time(6, 0)
    up_by: time = time(9, 0)
    # Days a device may go without a `test` event: models that can raise an SOS owe the weekly
    # button check; others only when named in `test_days_by_model` (0 there: none owed).
    test_days: Annotated[int, Field(ge=1, le=366)] = 7
    test_days_by_model: dict[str, Annotated[int, Field(ge=0, le=366)]] = Field(default_factory=dict)
    by_category: dict[ElderCategory, WelfareValues] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def test_days_of(self, model: DeviceModel) -> int:
        """Days the model may go untested; 0: it owes no periodic test."""
        if model.name in self.test_days_by_model:
            return self.test_days_by_model[model.name]
        return self.test_days if model.sos and "test" in model.events else 0

    def plan(
        self, categories: Iterable[str], overrides: Iterable[tuple[str, Any]] = ()
    ) -> WelfarePlan:
        """What applies to an elder in ``categories`` with their own ``overrides``.

        Several categories: the most protective value wins (the shortest inactivity, the
        earliest check-in and getting-up times, any opt-in); other values come from the first
        category, in the order of ElderCategory, that sets them. The elder's own values win
        over all.
        """
        values: dict[str, Any] = self.model_dump(
            exclude={"timezone", "test_days", "test_days_by_model", "by_category"}
        )
        chosen: dict[str, Any] = {}
        for category in ElderCategory:
            if category.value not in categories or category not in self.by_category:
                continue
            for name, value in self.by_category[category].set_values().items():
                if name not in chosen:
                    chosen[name] = value
                elif name in _LEAST:
                    chosen[name] = min(chosen[name], value)
                elif name in _ANY:
                    chosen[name] = chosen[name] or value
        values.update(chosen)
        values.update(elder_values(overrides))
        return WelfarePlan(**values)


_LEAST = {"inactivity_h", "checkin_by", "up_by"}
_ANY = {"checkin", "wandering"}


def elder_values(overrides: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """An elder's stored ``welfare`` values; what cannot be read is left out (the API
    validates what it stores, so this only guards against hand-edited rows)."""
    try:
        return WelfareValues.model_validate(dict(overrides)).set_values()
    except ValidationError:
        return {}


@dataclass(frozen=True, kw_only=True, slots=True)
class WelfarePlan:
    """The welfare rules as they apply to one elder."""

    inactivity_h: float
    quiet_from: time
    quiet_until: time
    checkin: bool
    checkin_by: time
    wandering: bool
    night_from: time
    night_until: time
    up_by: time


def watches_activity(model: DeviceModel | None) -> bool:
    return model is not None and bool(model.events & ACTIVITY_SENSOR_EVENTS)


def can_check_in(model: DeviceModel | None) -> bool:
    return model is not None and "checkin" in model.events
