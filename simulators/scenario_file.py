"""Reading a scenario file: YAML with the line of every value, checked by pydantic models.

Errors name the file, the line and the field: ``night.yaml:14: timeline[2].fall.cancel_after:
not a duration: '10x' (write 90s, 5m, 2h, 1h30m or seconds)``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from alerting.model import AlertStatus, AlertType


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names file, line and field."""


_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``5m``, ``2h``, ``1h30m``, ``1d``, or a number of seconds (``12``, ``"12"``,
    ``"1.5"``: a bare number is seconds, in a file and on the command line alike)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    text = str(value).strip()
    if _SECONDS.fullmatch(text):
        return timedelta(seconds=float(text))
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r} (write 90s, 5m, 2h, 1h30m or seconds)")
    days, hours, minutes, seconds = match.groups()
    return timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
_Strict = ConfigDict(extra="forbid", frozen=True)


class Group(BaseModel):
    """``homes`` homes with one device of each of ``models``."""

    model_config = _Strict
    homes: Annotated[int, Field(ge=1, le=200_000)]
    models: Annotated[list[str], Field(min_length=1, max_length=32)]
    building: Annotated[int, Field(ge=1)] | None = None
    community: str | None = None
    categories: list[str] = []
    # zigbee2mqtt: the devices publish as Zigbee2MQTT does (state and availability under
    # zigbee2mqtt/{device id}), and are registered with that friendly name.
    # dc09: live, the devices report over SIA DC-09 to `anxin simulate --dc09 HOST:PORT`.
    # watch: 4G watches (model watch-4g) speaking their TCP protocol to `anxin gateway watch`.
    protocol: Literal["native", "zigbee2mqtt", "dc09", "watch"] = "native"


class Target(BaseModel):
    """Whom a step or an expectation is about: homes (by number or building) or one device."""

    model_config = _Strict
    elder: Annotated[int, Field(ge=1)] | None = None
    elders: Annotated[str, Field(pattern=r"^\d+-\d+$")] | list[int] | None = None
    building: Annotated[int, Field(ge=1)] | None = None
    device: str | None = None
    everyone: bool = False
    model: str | None = None

    @property
    def targeted(self) -> bool:
        return any(
            v is not None for v in (self.elder, self.elders, self.building, self.device)
        ) or bool(self.everyone)


class Expectation(Target):
    """An alert the step should raise (on each device it targets, unless it names its own)."""

    type: AlertType
    status: AlertStatus | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    alerts: Annotated[int, Field(ge=0)] = 1


class Sos(BaseModel):
    model_config = _Strict
    presses: Annotated[int, Field(ge=1, le=1000)] = 1
    every: Duration = timedelta(seconds=10)


class Fall(BaseModel):
    model_config = _Strict
    cancel_after: Duration | None = None


class Alarm(BaseModel):
    model_config = _Strict
    restore_after: Duration | None = None


class Offline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    cause: Literal["network", "power"] = "network"
    lasting: Annotated[Duration, Field(alias="for")]


class Outage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    lasting: Annotated[Duration, Field(alias="for")]


class Battery(BaseModel):
    model_config = _Strict
    level: Annotated[float, Field(ge=0, le=100)]


class Temperature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    value: Annotated[float, Field(ge=-50, le=80)]
    lasting: Annotated[Duration, Field(alias="for")]


class Empty(BaseModel):
    model_config = _Strict


ALARMS = ("smoke", "gas", "co", "water_leak", "tamper")
SITUATIONS = (
    "sos", "fall", *ALARMS, "service_request", "offline", "broker_outage", "battery",
    "temperature", "quiet",
)  # fmt: skip


class Step(Target):
    """One situation of the timeline, ``at`` a time of day (``"03:10"``) or after the start
    (``3h10m``), with the alerts it should raise."""

    at: str | float
    expect: list[Expectation]
    sos: Sos | None = None
    fall: Fall | None = None
    smoke: Alarm | None = None
    gas: Alarm | None = None
    co: Alarm | None = None
    water_leak: Alarm | None = None
    tamper: Alarm | None = None
    service_request: Empty | None = None
    offline: Offline | None = None
    broker_outage: Outage | None = None
    battery: Battery | None = None
    temperature: Temperature | None = None
    quiet: Outage | None = None

    @model_validator(mode="after")
    def _one_situation(self) -> Step:
        given = [name for name in SITUATIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"needs exactly one situation of {', '.join(SITUATIONS)}; got "
                f"{', '.join(given) or 'none'}"
            )
        if given[0] == "broker_outage":
            if self.targeted or self.model:
                raise ValueError("broker_outage concerns every device: no elder, building …")
        elif not self.targeted:
            raise ValueError("say whom it concerns: elder, elders, building, device or everyone")
        return self

    @property
    def situation(self) -> str:
        return next(name for name in SITUATIONS if getattr(self, name) is not None)


class ScenarioFile(BaseModel):
    model_config = _Strict
    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: str = ""
    seed: int = 12349
    start: AwareDatetime
    duration: Duration
    timezone: str = "Asia/Shanghai"
    device_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "sim"
    fleet: Annotated[list[Group], Field(min_length=1)]
    timeline: list[Step] = []
    expect: list[Expectation] = []


Path_ = tuple[str | int, ...]


class Located:
    """A parsed document and the line (1-based) of each value, by its path."""

    def __init__(self, data: Any, lines: dict[Path_, int]) -> None:
        self.data, self.lines = data, lines

    def line_of(self, path: Path_) -> int | None:
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def load_yaml(text: str) -> Located:
    """YAML → plain data, remembering lines. Times like 03:10 stay text (YAML 1.1 would read a
    base-60 number)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Path_, int] = {}
    constructor = yaml.SafeLoader("")

    def build(item: yaml.Node, path: Path_) -> Any:
        lines[path] = item.start_mark.line + 1
        if isinstance(item, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in item.value:
                key = build(key_node, (*path, "<key>"))
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(item, yaml.SequenceNode):
            return [build(child, (*path, index)) for index, child in enumerate(item.value)]
        if item.tag.endswith((":int", ":float")) and ":" in str(item.value):
            return str(item.value)
        return constructor.construct_object(item, deep=True)

    return Located(None if node is None else build(node, ()), lines)


def read_scenario_file(path: Path) -> tuple[ScenarioFile, Located]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from exc
    try:
        located = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{where}: not valid YAML: {problem}") from exc
    if not isinstance(located.data, dict):
        raise ScenarioError(f"{path}:1: a scenario is a mapping (name, start, fleet …)")
    try:
        return ScenarioFile.model_validate(located.data), located
    except ValidationError as exc:
        raise ScenarioError(_describe(path, located, exc)) from exc


def _describe(path: Path, located: Located, error: ValidationError, limit: int = 3) -> str:
    problems = []
    for item in error.errors()[:limit]:
        loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
        line = located.line_of(loc)
        where = _dotted(loc) or "scenario"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{path}:{line or 1}: {where}: {message}")
    return "\n".join(problems)


def _is_union_tag(part: str | int) -> bool:
    # pydantic names the member of a union it tried ("str", "list[int]", "function-before…").
    return isinstance(part, str) and (
        "[" in part or part in ("str", "int", "float") or part.startswith("function-")
    )


def _dotted(loc: Path_) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
