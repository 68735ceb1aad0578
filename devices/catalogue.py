"""The device-model catalogue: what each kind of device is, as frozen data.

One declarative table (style.md item 7) that the codecs, the rules and the simulators all read:
how often a model proves it is alive, how many missed heartbeats make it offline, which events
it can raise, whether it can raise an SOS, and its battery thresholds. Deployments adjust it from
configuration with :func:`apply_overrides`, which returns a new catalogue and never changes this
one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from devices.codec import EVENT_TYPES
from devices.payloads import SosTrigger

MODEL_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

# Bounds a configured heartbeat must stay within: a device cannot usefully be expected more
# often than every 10 s, and one heard from less than weekly is not being supervised.
MIN_HEARTBEAT_S = 10
MAX_HEARTBEAT_S = 7 * 24 * 3600
MAX_MISSES = 100


class CatalogueError(ValueError):
    """A catalogue or an override of it that cannot be used; the message names model and field."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BatteryThresholds:
    """Battery levels in percent: below ``low_pct`` warn, below ``critical_pct`` act now."""

    low_pct: float
    critical_pct: float

    def __post_init__(self) -> None:
        if not 0 <= self.critical_pct < self.low_pct <= 100:
            raise ValueError(
                "battery thresholds need 0 <= critical_pct < low_pct <= 100, "
                f"got low_pct={self.low_pct}, critical_pct={self.critical_pct}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceModel:
    """One kind of device, as the platform supervises it."""

    name: str
    display_name: str  # 中文名, shown to dispatchers
    # Seconds between two proofs of life (heartbeat, or any message) when all is well.
    heartbeat_s: int
    # This many heartbeats missed in a row and the device counts as offline.
    offline_after_missed: int
    # Event types of contract §1 the model can raise (SOS is not one: see ``sos``).
    events: frozenset[str]
    # It has an emergency button (or cord): it can raise an SOS.
    sos: bool = False
    # Every press of its button is an SOS: its only button is the emergency one. A Zigbee
    # button registered as such a model raises an SOS on ``single``, ``double``, ``hold`` ….
    press_means_sos: bool = False
    # The contract's SOS ``trigger`` for this model's SOS (``button``, ``pullcord`` …).
    sos_trigger: str | None = None
    mains_powered: bool = False
    # None: nothing to watch (mains powered, no backup battery reported).
    battery: BatteryThresholds | None = None

    def __post_init__(self) -> None:
        if not MODEL_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name: {self.name!r} is not lower-case letters, digits and -")
        if not self.display_name.strip():
            raise ValueError("display_name: must not be empty")
        if not MIN_HEARTBEAT_S <= self.heartbeat_s <= MAX_HEARTBEAT_S:
            raise ValueError(
                f"heartbeat_s: must be within {MIN_HEARTBEAT_S}..{MAX_HEARTBEAT_S}, "
                f"got {self.heartbeat_s}"
            )
        if not 1 <= self.offline_after_missed <= MAX_MISSES:
            raise ValueError(
                f"offline_after_missed: must be within 1..{MAX_MISSES}, "
                f"got {self.offline_after_missed}"
            )
        unknown = sorted(self.events - EVENT_TYPES)
        if unknown:
            raise ValueError(f"events: not in the contract: {', '.join(unknown)}")
        if self.press_means_sos and not self.sos:
            raise ValueError("press_means_sos: needs sos")
        if self.sos_trigger is not None:
            if not self.sos:
                raise ValueError("sos_trigger: needs sos")
            if self.sos_trigger not in {trigger.value for trigger in SosTrigger}:
                raise ValueError(f"sos_trigger: {self.sos_trigger!r} is not a contract trigger")
        if not self.mains_powered and self.battery is None:
            raise ValueError(
                "mains_powered: a battery-powered model needs battery thresholds "
                "(battery_low_pct, battery_critical_pct)"
            )

    @property
    def offline_after_s(self) -> int:
        """Silence after which the device counts as offline."""
        return self.heartbeat_s * self.offline_after_missed


class Catalogue(Mapping[str, DeviceModel]):
    """Device models by name; read-only. Change it with :func:`apply_overrides`."""

    __slots__ = ("_models",)

    def __init__(self, models: Iterable[DeviceModel]) -> None:
        by_name: dict[str, DeviceModel] = {}
        for model in models:
            if model.name in by_name:
                raise CatalogueError(f"device model {model.name!r} is listed twice")
            by_name[model.name] = model
        self._models: Mapping[str, DeviceModel] = MappingProxyType(by_name)

    def __getitem__(self, name: str) -> DeviceModel:
        return self._models[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"Catalogue({', '.join(self._models)})"

    def sos_models(self) -> frozenset[str]:
        """Names of the models that can raise an SOS."""
        return frozenset(name for name, model in self._models.items() if model.sos)


_COIN_CELL = BatteryThresholds(low_pct=25, critical_pct=10)  # CR2032 falls off a cliff late
_LITHIUM = BatteryThresholds(low_pct=20, critical_pct=10)  # CR123A / AA / sealed 10-year cells
_RECHARGEABLE = BatteryThresholds(low_pct=30, critical_pct=15)  # worn daily, charged by the elder
_PHONE = BatteryThresholds(low_pct=20, critical_pct=10)

# Heartbeat intervals, chosen from how such devices report in the field:
# - 4G / Cat-1 wearables upload position and status every 5–15 min by default: 10 min keeps a
#   pendant a few days on a charge and still notices a dead one within half an hour.
# - 4G elder phones ("老人机") check in with their platform every 30 min or so to save battery.
# - Battery Zigbee end devices check in about hourly (Aqara/Xiaomi every ~50–60 min; Zigbee2MQTT
#   itself waits 25 h before calling a passive device offline): 1 h, offline after 3 h silent.
# - Mains devices (radar fall detectors, 220 V gas alarms, gateways) can afford to report often;
#   Zigbee2MQTT pings mains ("active") devices every 10 min.
# NB-IoT smoke alarms, common in Chinese home-safety programmes, report once a day: configure
# them with an override such as {"smoke-detector": {"heartbeat_s": 86400,
# "offline_after_missed": 2}}.
_PANEL_EVENTS = frozenset(
    {
        "fall", "smoke", "heat", "gas", "co", "water_leak", "low_battery",
        "power_loss", "power_restore", "tamper", "test", "service_request",
    }
)  # fmt: skip
_MODELS = (
    DeviceModel(
        name="sos-pendant",
        display_name="一键呼救挂件",
        heartbeat_s=600,
        offline_after_missed=3,
        events=frozenset({"fall", "removed", "low_battery", "checkin", "cancel", "test"}),
        sos=True,
        press_means_sos=True,
        sos_trigger="button",
        battery=_RECHARGEABLE,
    ),
    DeviceModel(
        name="sos-button",  # wall, bedside or keypad panic button
        display_name="紧急呼叫按钮",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"service_request", "cancel", "tamper", "low_battery", "test"}),
        sos=True,
        press_means_sos=True,
        sos_trigger="button",
        battery=_COIN_CELL,
    ),
    DeviceModel(
        name="pull-cord",
        display_name="紧急拉绳",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"cancel", "tamper", "low_battery", "test"}),
        sos=True,
        press_means_sos=True,
        sos_trigger="pullcord",
        battery=_COIN_CELL,
    ),
    DeviceModel(
        name="fall-detector",  # ceiling or wall mmWave radar, mains (220 V or USB) powered
        display_name="跌倒检测雷达",
        heartbeat_s=300,
        offline_after_missed=3,
        events=frozenset({"fall", "motion", "test"}),
        mains_powered=True,
    ),
    DeviceModel(
        name="4g-elder-phone",
        display_name="4G 老人手机",
        heartbeat_s=1800,
        offline_after_missed=3,
        events=frozenset({"low_battery", "checkin", "service_request", "cancel", "test"}),
        sos=True,
        sos_trigger="button",
        battery=_PHONE,
    ),
    DeviceModel(
        name="smoke-detector",
        display_name="烟雾报警器",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"smoke", "tamper", "low_battery", "test"}),
        battery=_LITHIUM,
    ),
    DeviceModel(
        name="gas-detector",  # household gas alarms in China are 220 V mains powered
        display_name="燃气报警器",
        heartbeat_s=600,
        offline_after_missed=3,
        events=frozenset({"gas", "tamper", "power_loss", "power_restore", "test"}),
        mains_powered=True,
    ),
    DeviceModel(
        name="co-detector",
        display_name="一氧化碳报警器",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"co", "tamper", "low_battery", "test"}),
        battery=_LITHIUM,
    ),
    DeviceModel(
        name="water-leak",
        display_name="水浸传感器",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"water_leak", "tamper", "low_battery"}),
        battery=_COIN_CELL,
    ),
    DeviceModel(
        name="door-contact",
        display_name="门磁传感器",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"door_open", "door_close", "tamper", "low_battery"}),
        battery=_COIN_CELL,
    ),
    DeviceModel(
        name="pir-motion",
        display_name="人体红外感应器",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"motion", "tamper", "low_battery"}),
        battery=_COIN_CELL,
    ),
    DeviceModel(
        name="bed-sensor",  # pressure strap or mat under the mattress
        display_name="离床感应垫",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"bed_exit", "bed_enter", "low_battery"}),
        battery=_LITHIUM,
    ),
    DeviceModel(
        name="temperature-sensor",
        display_name="温湿度传感器",
        heartbeat_s=3600,
        offline_after_missed=3,
        events=frozenset({"heat", "cold", "low_battery"}),
        battery=_COIN_CELL,
    ),
    DeviceModel(
        name="zigbee-gateway",  # mains, often on a mobile link that drops now and then
        display_name="Zigbee 网关",
        heartbeat_s=300,
        offline_after_missed=3,
        events=frozenset({"power_loss", "power_restore", "tamper", "test"}),
        mains_powered=True,
    ),
    DeviceModel(
        # A telecare hub or alarm panel reporting over SIA DC-09 (`anxin gateway dc09`): it
        # relays its pendants' and sensors' events (Contact ID or SIA codes) as its own. Its
        # NULL polls and periodic tests are its heartbeat; panels poll every few minutes.
        name="dc09-panel",
        display_name="报警主机（DC-09）",
        heartbeat_s=600,
        offline_after_missed=3,
        events=_PANEL_EVENTS,
        sos=True,
        sos_trigger="button",
        mains_powered=True,
    ),
)

CATALOGUE = Catalogue(_MODELS)


class ModelOverride(BaseModel):
    """What configuration may change about a model; anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    display_name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    heartbeat_s: Annotated[StrictInt, Field(ge=MIN_HEARTBEAT_S, le=MAX_HEARTBEAT_S)] | None = None
    offline_after_missed: Annotated[StrictInt, Field(ge=1, le=MAX_MISSES)] | None = None
    events: frozenset[str] | None = None
    mains_powered: StrictBool | None = None
    battery_low_pct: Annotated[StrictFloat | StrictInt, Field(ge=0, le=100)] | None = None
    battery_critical_pct: Annotated[StrictFloat | StrictInt, Field(ge=0, le=100)] | None = None


_OVERRIDES = TypeAdapter(dict[str, ModelOverride])


def apply_overrides(
    overrides: Mapping[str, Any] | None, catalogue: Catalogue = CATALOGUE
) -> Catalogue:
    """A new catalogue with ``overrides`` (model name → fields) applied.

    ``{"sos-pendant": {"heartbeat_s": 600}}``. Raises :class:`CatalogueError` naming the model
    and field on bad input; an unknown model name is an error, not ignored.
    """
    if not overrides:
        return catalogue
    try:
        parsed = _OVERRIDES.validate_python(overrides)
    except ValidationError as exc:
        raise CatalogueError(_describe(exc)) from exc
    unknown = sorted(set(parsed) - set(catalogue))
    if unknown:
        known = ", ".join(catalogue)
        raise CatalogueError(
            f"unknown device model {', '.join(map(repr, unknown))} in overrides (known: {known})"
        )
    models = dict(catalogue.items())
    for name, override in parsed.items():
        models[name] = _overridden(models[name], override)
    return Catalogue(models.values())


def _overridden(model: DeviceModel, override: ModelOverride) -> DeviceModel:
    changes: dict[str, Any] = {
        field: value
        for field in ("display_name", "heartbeat_s", "offline_after_missed", "mains_powered")
        if (value := getattr(override, field)) is not None
    }
    if override.events is not None:
        unknown = sorted(override.events - EVENT_TYPES)
        if unknown:
            raise CatalogueError(
                f"device model {model.name!r}: events: not in the contract: {', '.join(unknown)}"
            )
        changes["events"] = override.events
    low, critical = override.battery_low_pct, override.battery_critical_pct
    if low is not None or critical is not None:
        current = model.battery
        if low is None and current is not None:
            low = current.low_pct
        if critical is None and current is not None:
            critical = current.critical_pct
        if low is None or critical is None:
            missing = "battery_low_pct" if low is None else "battery_critical_pct"
            raise CatalogueError(
                f"device model {model.name!r}: {missing}: needed too, the model has no "
                "battery thresholds to keep"
            )
        try:
            changes["battery"] = BatteryThresholds(low_pct=low, critical_pct=critical)
        except ValueError as exc:
            raise CatalogueError(
                f"device model {model.name!r}: battery_low_pct, battery_critical_pct: {exc}"
            ) from exc
    try:
        return replace(model, **changes)
    except ValueError as exc:
        raise CatalogueError(f"device model {model.name!r}: {exc}") from exc


def _describe(error: ValidationError, limit: int = 3) -> str:
    parts = []
    for item in error.errors()[:limit]:
        loc = [str(part) for part in item["loc"]]
        if not loc:
            parts.append(f"overrides: {item['msg']}")
        elif len(loc) == 1:
            parts.append(f"device model {loc[0]!r}: {item['msg']}")
        else:
            parts.append(f"device model {loc[0]!r}: {'.'.join(loc[1:])}: {item['msg']}")
    return "; ".join(parts)
