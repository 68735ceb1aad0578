"""Scenarios: a fleet's make-up and a timeline of situations, with the alerts each should raise.

The file format is in docs/simulators.md; scenario_file.py reads and checks it. Here it becomes
what the simulator runs — one plan per device and the broker outages — and the list of
alerts expected, by device and type, that ``anxin replay --expect`` compares against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerting.model import AlertStatus, AlertType
from devices.catalogue import CATALOGUE, Catalogue, DeviceModel
from devices.topics import Uplink
from simulators.behaviours import BEHAVIOURS, QUIET, WILL_DELAY, Emission, stable_random
from simulators.scenario_file import (
    ALARMS,
    Expectation,
    Located,
    ScenarioError,
    ScenarioFile,
    Step,
    Target,
    parse_duration,
    read_scenario_file,
)
from simulators.traffic import LinkChange
from simulators.virtual_devices import (
    DEFAULT_PREFIX,
    DevicePlan,
    Silence,
    VirtualDevice,
    Window,
    build_home,
)

# Devices come back from an outage of the broker within this long of it returning.
RECONNECT_SPREAD_S = 30.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ExpectedAlert:
    device_id: str
    type: AlertType
    status: AlertStatus | None = None
    count: int | None = None
    # How many alerts of this type the device should have (0: none at all).
    alerts: int = 1


@dataclass(kw_only=True, slots=True)
class Scenario:
    name: str
    seed: int
    start: datetime
    end: datetime
    zone: ZoneInfo
    prefix: str
    plans: list[DevicePlan]
    links: list[LinkChange] = field(default_factory=list)
    expected: dict[tuple[str, AlertType], ExpectedAlert] = field(default_factory=dict)

    @property
    def devices(self) -> list[VirtualDevice]:
        return [plan.device for plan in self.plans]


def load_scenario(path: Path, catalogue: Catalogue = CATALOGUE) -> Scenario:
    spec, located = read_scenario_file(path)
    return _Compiler(path, spec, located, catalogue).compile()


def plain_scenario(
    devices: Sequence[VirtualDevice],
    seed: int,
    start: datetime,
    duration: timedelta,
    prefix: str = DEFAULT_PREFIX,
) -> Scenario:
    """A fleet going about its day, nothing happening to it."""
    return Scenario(
        name="fleet",
        seed=seed,
        start=start,
        end=start + duration,
        zone=ZoneInfo("Asia/Shanghai"),
        prefix=prefix,
        plans=[DevicePlan(device=device) for device in devices],
    )


class _Compiler:
    def __init__(
        self, path: Path, spec: ScenarioFile, located: Located, catalogue: Catalogue
    ) -> None:
        self.path, self.spec, self.located, self.catalogue = path, spec, located, catalogue

    def fail(self, where: tuple[str | int, ...], message: str) -> ScenarioError:
        line = self.located.line_of(where) or 1
        dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
        return ScenarioError(f"{self.path}:{line}: {dotted}: {message}")

    def compile(self) -> Scenario:
        spec = self.spec
        try:
            zone = ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise self.fail(("timezone",), f"unknown time zone {spec.timezone!r}") from exc
        scenario = Scenario(
            name=spec.name,
            seed=spec.seed,
            start=spec.start,
            end=spec.start + spec.duration,
            zone=zone,
            prefix=spec.device_prefix,
            plans=[DevicePlan(device=d) for d in self._fleet()],
        )
        by_id = {plan.device.device_id: plan for plan in scenario.plans}
        for index, step in enumerate(spec.timeline):
            where: tuple[str | int, ...] = ("timeline", index)
            at = self._moment(step.at, (*where, "at"), scenario)
            devices = self._targets(step, where, scenario, capable=step.situation)
            self._apply(step, at, [by_id[d.device_id] for d in devices], scenario)
            for number, expectation in enumerate(step.expect):
                self._expect(expectation, devices, (*where, "expect", number), scenario)
        for number, expectation in enumerate(spec.expect):
            if not expectation.targeted:
                raise self.fail(("expect", number), "say which devices: elder, device …")
            self._expect(expectation, [], ("expect", number), scenario)
        return scenario

    def _fleet(self) -> list[VirtualDevice]:
        devices: list[VirtualDevice] = []
        number = 0
        for index, group in enumerate(self.spec.fleet):
            models = [self._model(name, ("fleet", index, "models")) for name in group.models]
            for _ in range(group.homes):
                number += 1
                devices += build_home(
                    number,
                    models,
                    prefix=self.spec.device_prefix,
                    building=group.building or index + 1,
                    community=group.community,
                    categories=group.categories,
                    zigbee=group.protocol == "zigbee2mqtt",
                    dc09=group.protocol == "dc09",
                )
        return devices

    def _model(self, name: str, where: tuple[str | int, ...]) -> DeviceModel:
        model = self.catalogue.get(name)
        if model is None:
            raise self.fail(where, f"unknown model {name!r} (known: {', '.join(self.catalogue)})")
        return model

    def _moment(self, value: str | float, where: tuple[str | int, ...], sc: Scenario) -> datetime:
        text = str(value).strip()
        clock = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
        if clock:
            hour, minute, second = (int(part or 0) for part in clock.groups())
            if hour > 23 or minute > 59 or second > 59:
                raise self.fail(where, f"not a time of day: {text!r}")
            local_start = sc.start.astimezone(sc.zone)
            moment = datetime.combine(
                local_start.date(), time(hour, minute, second), tzinfo=sc.zone
            )
            if moment < local_start:
                moment += timedelta(days=1)
        else:
            try:
                moment = sc.start + parse_duration(text)
            except ValueError as exc:
                raise self.fail(where, f"{exc}; or a time of day like '03:10'") from exc
        if not sc.start <= moment < sc.end:
            raise self.fail(where, f"{text!r} is outside the scenario ({sc.start} + duration)")
        return moment

    def _targets(
        self, target: Target, where: tuple[str | int, ...], sc: Scenario, capable: str | None
    ) -> list[VirtualDevice]:
        if capable == "broker_outage":
            return sc.devices
        homes: set[int] | None = None
        if target.elder is not None:
            homes = {target.elder}
        elif isinstance(target.elders, str):
            low, high = (int(part) for part in target.elders.split("-"))
            homes = set(range(low, high + 1))
        elif isinstance(target.elders, list):
            homes = set(target.elders)
        found = [
            d
            for d in sc.devices
            if (homes is None or d.home.number in homes)
            and (target.building is None or d.home.building == target.building)
            and (target.device is None or d.device_id == target.device)
            and (target.model is None or d.model.name == target.model)
        ]
        if not found:
            raise self.fail(where, "concerns no device of the fleet")
        if capable is not None:
            able = [d for d in found if _can(d.model, capable, self._step_of(where))]
            if not able:
                models = sorted({d.model.name for d in found})
                raise self.fail(
                    where, f"none of its devices ({', '.join(models)}) can do {capable}"
                )
            found = able
        if target.device is None and target.model is None and capable not in _EVERY_DEVICE:
            first: dict[int, VirtualDevice] = {}
            for device in found:
                first.setdefault(device.home.number, device)
            found = list(first.values())
        return found

    def _step_of(self, where: tuple[str | int, ...]) -> Step | None:
        if len(where) >= 2 and where[0] == "timeline" and isinstance(where[1], int):
            return self.spec.timeline[where[1]]
        return None

    def _apply(self, step: Step, at: datetime, plans: list[DevicePlan], sc: Scenario) -> None:
        kind = step.situation
        for plan in plans:
            device = plan.device
            model = device.model
            emit = plan.extra.append
            if step.sos is not None:
                body = {"trigger": model.sos_trigger or "button", "location": {"room": device.room}}
                for press in range(step.sos.presses):
                    emit(_msg(at + press * step.sos.every, device, Uplink.SOS, body))
            elif step.fall is not None:
                emit(_msg(at, device, Uplink.EVENT, {"type": "fall"}))
                if step.fall.cancel_after is not None:
                    cancel = at + step.fall.cancel_after
                    emit(_msg(cancel, device, Uplink.EVENT, {"type": "cancel"}))
            elif kind in ALARMS or kind == "service_request":
                emit(_msg(at, device, Uplink.EVENT, {"type": kind}))
                alarm = getattr(step, kind)
                restore_after = getattr(alarm, "restore_after", None)
                if restore_after is not None:
                    body = {"type": kind, "state": "restore"}
                    emit(_msg(at + restore_after, device, Uplink.EVENT, body))
            elif step.offline is not None:
                _offline(plan, at, step.offline.lasting, step.offline.cause)
            elif step.broker_outage is not None:
                end = at + step.broker_outage.lasting
                plan.silences.append(Silence(start=at, end=end, cause="broker"))
                spread = stable_random(sc.seed, device.device_id, "reconnect", at.timestamp())
                back = end + timedelta(seconds=spread.uniform(0, RECONNECT_SPREAD_S))
                emit(_msg(back, device, Uplink.STATUS, {"status": "online"}))
            elif step.battery is not None:
                plan.batteries.append((at, step.battery.level))
            elif step.temperature is not None:
                window = Window(start=at, end=at + step.temperature.lasting)
                plan.temperatures.append((window, step.temperature.value))
            elif step.quiet is not None:
                plan.quiet.append(Window(start=at, end=at + step.quiet.lasting))
        if step.broker_outage is not None:
            end = at + step.broker_outage.lasting
            sc.links += [LinkChange(time=at, up=False), LinkChange(time=end, up=True)]

    def _expect(
        self,
        expectation: Expectation,
        step_devices: list[VirtualDevice],
        where: tuple[str | int, ...],
        sc: Scenario,
    ) -> None:
        devices = (
            self._targets(expectation, where, sc, capable=None)
            if expectation.targeted
            else step_devices
        )
        if not devices:
            raise self.fail(where, "a broker outage has no devices of its own: name them")
        for device in devices:
            key = (device.device_id, expectation.type)
            sc.expected[key] = ExpectedAlert(
                device_id=device.device_id,
                type=expectation.type,
                status=expectation.status,
                count=expectation.count,
                alerts=expectation.alerts,
            )


# Situations that concern every device of the homes, not the first able one.
_EVERY_DEVICE = frozenset({"offline", "quiet", "battery"})


def _can(model: DeviceModel, situation: str, step: Step | None) -> bool:
    """Can a device of this model be in this situation (the catalogue says what it sends)?"""
    if situation == "sos":
        return model.sos
    if situation == "fall":
        cancels = step is not None and step.fall is not None and step.fall.cancel_after
        return "fall" in model.events and (not cancels or "cancel" in model.events)
    if situation == "tamper":
        return "tamper" in model.events
    if situation in (*ALARMS, "service_request"):
        return situation in model.events
    if situation == "battery":
        return model.battery is not None
    if situation == "temperature":
        return BEHAVIOURS.get(model.name, QUIET).climate_every_s > 0
    return True  # offline, quiet: any device


def _msg(at: datetime, device: VirtualDevice, kind: Uplink, body: Mapping[str, object]) -> Emission:
    retain = kind is Uplink.STATUS
    return Emission(at=at, device_id=device.device_id, kind=kind, body=body, qos=1, retain=retain)


def _offline(plan: DevicePlan, at: datetime, lasting: timedelta, cause: str) -> None:
    """A link lost (the broker publishes the last will after 1.5 keepalives) or a power cut
    (a model that reports power loss says so and carries on on its backup battery)."""
    device = plan.device
    end = at + lasting
    if cause == "power" and "power_loss" in device.model.events:
        plan.extra.append(_msg(at, device, Uplink.EVENT, {"type": "power_loss"}))
        plan.extra.append(_msg(end, device, Uplink.EVENT, {"type": "power_restore"}))
        return
    plan.silences.append(Silence(start=at, end=end, cause=cause))
    if lasting > WILL_DELAY:
        will = _msg(at + WILL_DELAY, device, Uplink.STATUS, {"status": "offline"})
        plan.extra.append(
            Emission(
                at=will.at,
                device_id=will.device_id,
                kind=will.kind,
                body=will.body,
                qos=1,
                retain=True,
                by_broker=True,
            )
        )
    plan.extra.append(_msg(end, device, Uplink.STATUS, {"status": "online"}))
    plan.extra.append(
        Emission(at=end + timedelta(seconds=1), device_id=device.device_id, kind=Uplink.HEARTBEAT)
    )
