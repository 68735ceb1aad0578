"""The rule settings: what turns events into alerts, with what priority. Validated at load.

Defaults live in ``alerting/default_rules.toml`` (documented there, one line a setting); a
deployment points ``ANXIN_RULES_FILE`` at its own file, which only needs what it changes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerting.escalation_rules import EscalationRule, NotifyRule
from alerting.model import ALERT_KINDS, AlertType, Priority
from alerting.visit_rules import VisitRules
from alerting.welfare_rules import WelfareRules
from devices.elders import ElderCategory


class RulesError(ValueError):
    """The rules file cannot be used; the message names the setting."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FallRule(_Strict):
    # A `cancel` from the device within this many seconds withdraws the fall alert.
    cancel_window_s: Annotated[int, Field(ge=0, le=600)] = 30


class TemperatureRule(_Strict):
    # Indoor temperature (telemetry temperature_c) at or above: heat; at or below: cold.
    heat_c: float = 35.0
    cold_c: float = 8.0
    # Back inside the band by this margin before the alert resolves itself.
    hysteresis_c: Annotated[float, Field(ge=0, le=10)] = 1.0

    @model_validator(mode="after")
    def _band(self) -> TemperatureRule:
        if self.cold_c + 2 * self.hysteresis_c >= self.heat_c:
            raise ValueError("cold_c + 2 × hysteresis_c must stay below heat_c")
        return self


class BatteryRule(_Strict):
    # A low-battery alert resolves itself once the level is this much above the model's low.
    hysteresis_pct: Annotated[float, Field(ge=0, le=50)] = 5.0


class VitalsRule(_Strict):
    # Heart rate (bpm) and SpO2 (%) from a wearable's telemetry (heart_rate, spo2): out of
    # range is below *_low or above *_high. A reading of 0 or less is "no reading".
    heart_rate_low: Annotated[float, Field(ge=0, le=300)] = 45.0
    heart_rate_high: Annotated[float, Field(ge=0, le=300)] = 130.0
    spo2_low: Annotated[float, Field(ge=0, le=100)] = 90.0
    # "Stays" out of range: this many readings in a row, the first and the last at least
    # sustained_s apart (one bad reading of a watch worn loosely is no alarm).
    readings: Annotated[int, Field(ge=1, le=100)] = 3
    sustained_s: Annotated[int, Field(ge=0, le=86_400)] = 300

    @model_validator(mode="after")
    def _band(self) -> VitalsRule:
        if self.heart_rate_low >= self.heart_rate_high:
            raise ValueError("heart_rate_low must be below heart_rate_high")
        return self


class RateLimit(_Strict):
    # Occurrences one device may add within a minute; beyond, repeats are acknowledged but
    # not counted, so a stuck button cannot flood the store. New alert types always pass.
    per_device_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 30


class RuleSet(_Strict):
    fall: FallRule = FallRule()
    temperature: TemperatureRule = TemperatureRule()
    battery: BatteryRule = BatteryRule()
    rate_limit: RateLimit = RateLimit()
    vitals: VitalsRule = VitalsRule()
    welfare: WelfareRules = WelfareRules()
    # Unclaimed alerts: escalation and reminders; who is notified when (escalation_rules.py).
    escalation: EscalationRule = EscalationRule()
    notify: NotifyRule = NotifyRule()
    # Home visits: from welfare alerts nobody closed, routine per category, overdue ones.
    visits: VisitRules = VisitRules()
    # Alert type → priority, replacing the contract's defaults.
    priority: dict[AlertType, Priority] = Field(default_factory=dict)
    # Elder category → alert type → priority: who is more at risk gets a louder alert.
    priority_by_category: dict[ElderCategory, dict[AlertType, Priority]] = Field(
        default_factory=dict
    )

    def priority_of(self, alert: AlertType, categories: frozenset[str] = frozenset()) -> Priority:
        """The most urgent of the default, the override and every category's override."""
        chosen = self.priority.get(alert, ALERT_KINDS[alert].priority)
        for category, overrides in self.priority_by_category.items():
            if category.value in categories and alert in overrides:
                chosen = min(chosen, overrides[alert], key=lambda p: p.rank)
        return chosen


def load_rules(path: Path | None = None) -> RuleSet:
    """The packaged defaults, with ``path``'s settings on top."""
    values = _read(resources.files("alerting").joinpath("default_rules.toml").read_text("utf-8"))
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(f"rules file {path}: {exc.strerror}") from exc
        values = _merge(values, _read(text, str(path)))
    try:
        return RuleSet.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RulesError(f"rules: {where}: {first['msg']}") from exc


def _read(text: str, name: str = "default_rules.toml") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {name}: {exc}") from exc


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
