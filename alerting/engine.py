"""The rules engine: a pure function of (what we know of a device, event, now) → decisions.

It reads no clock, socket or database, so it gives the same answers live, in tests and in
virtual-time replay. It knows the event rules (SOS, alarms and their restores, the fall's
cancel window, temperature and battery thresholds, a device heard from again, the per-device
rate limit, a door opened at night); for the time rules (inactivity, check-ins, getting up,
periodic tests) it hands back deadlines that the scheduler fires (alerting/welfare.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from alerting.decisions import (
    CancelAlert,
    Decision,
    NoteOnAlert,
    RaiseAlert,
    RecordSighting,
    RejectMessage,
    ResolveAlert,
)
from alerting.model import ALERT_KINDS, AlertType
from alerting.rules import RuleSet, load_rules
from alerting.welfare import at_night, event_time, on_event
from alerting.welfare_rules import WelfarePlan
from devices.catalogue import CATALOGUE, Catalogue
from devices.events import (
    AvailabilityChanged,
    DeviceEvent,
    Heartbeat,
    SensorEvent,
    SosPressed,
    TelemetryReport,
)
from devices.registry import DeviceInfo, DeviceStatus, Sighting

UNKNOWN_DEVICE = "unknown device"
RATE_WINDOW = timedelta(minutes=1)

# Sensor alarms that are emergencies: a restore is noted, but a person closes the alert.
EMERGENCY_EVENTS = {
    "fall": AlertType.FALL,
    "smoke": AlertType.SMOKE,
    "gas": AlertType.GAS,
    "co": AlertType.CO,
    "water_leak": AlertType.WATER_LEAK,
    "heat": AlertType.HEAT,
    "cold": AlertType.COLD,
    # An alarm of unknown kind (a watch's AL with no status bit): a person checks it.
    "device_alarm": AlertType.DEVICE_ALARM,
}
# Technical conditions that end by themselves: the restore resolves the alert.
TECHNICAL_EVENTS = {
    "tamper": (AlertType.TAMPER, "tamper"),
    "removed": (AlertType.TAMPER, "tamper"),
    "low_battery": (AlertType.LOW_BATTERY, "low_battery"),
    "power_loss": (AlertType.POWER_LOSS, "power_restore"),
}
RESTORING_EVENTS = {"power_restore": AlertType.POWER_LOSS}


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenAlert:
    type: AlertType
    # When the condition began (the first occurrence's time).
    since: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class VitalRun:
    """Readings of one vital sign out of range in a row: how many, since when."""

    readings: int
    since: datetime
    value: float


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceState:
    """What the engine knows of one device: its registration, its open alerts, its recent
    occurrences (for the rate limit). The shell loads it; the engine returns the next one."""

    device_id: str
    device: DeviceInfo | None
    open_alerts: Mapping[AlertType, OpenAlert] = field(default_factory=dict)
    recent: tuple[datetime, ...] = ()
    # The open welfare alerts of the device's elder (inactivity, missed check-in …).
    elder_open: frozenset[AlertType] = frozenset()
    # Vital signs (heart_rate, spo2) out of range in a row, for the [vitals] rule. Kept by the
    # shell in memory like ``recent``: a restart only delays an alert by a few readings.
    vitals: Mapping[str, VitalRun] = field(default_factory=dict)


# Not frozen: one or more is made per message, and a frozen dataclass's __init__ costs three
# times as much (object.__setattr__ per field). Nothing changes one once made.
@dataclass(kw_only=True, slots=True)
class Evaluation:
    state: DeviceState
    decisions: tuple[Decision, ...]


class RulesEngine:
    def __init__(self, rules: RuleSet | None = None, catalogue: Catalogue = CATALOGUE) -> None:
        self.rules = rules or load_rules()
        self.catalogue = catalogue
        # Few distinct (categories, overrides) pairs: resolve each once, not per event.
        self.plan_for = lru_cache(maxsize=4096)(self._plan)
        # Each model's low battery level (None: no battery rule), looked up at every heartbeat.
        self._low_battery = {
            name: model.battery.low_pct if model.battery is not None else None
            for name, model in catalogue.items()
        }

    def _plan(
        self, categories: frozenset[str], overrides: tuple[tuple[str, Any], ...]
    ) -> WelfarePlan:
        return self.rules.welfare.plan(categories, overrides)

    def plan_of(self, device: DeviceInfo) -> WelfarePlan | None:
        """The welfare rules for the device's elder; None for a device assigned to nobody."""
        if device.elder_id is None:
            return None
        return self.plan_for(device.elder_categories, device.elder_welfare)

    def evaluate(self, state: DeviceState, event: DeviceEvent, now: datetime) -> Evaluation:
        """Decide what ``event`` means for the device in ``state`` at ``now``."""
        if type(event) is Heartbeat:
            quiet = self._quiet_heartbeat(state, event)
            if quiet is not None:
                return quiet
        run = _Run(self, state, now)
        if isinstance(event, SosPressed):
            run.sos(event)
        elif state.device is None:
            run.decide(RejectMessage(reason=UNKNOWN_DEVICE))
            return run.result()
        if state.device is not None and _sign_of_life(event):
            run.decide(RecordSighting(sighting=_sighting(event)))
            if AlertType.DEVICE_OFFLINE in run.open:
                run.resolve(AlertType.DEVICE_OFFLINE, "the device was heard from again")
        if state.device is None:
            return run.result()
        if isinstance(event, SensorEvent):
            run.sensor(event)
            run.welfare(event)
        elif isinstance(event, TelemetryReport):
            run.temperature(event)
            run.vital_signs(event)
        if event.battery is not None and not event.retained:
            run.battery(event, event.battery)
        return run.result()

    def _quiet_heartbeat(self, state: DeviceState, event: Heartbeat) -> Evaluation | None:
        """Most of what a fleet sends, the short way (a third of the cost): a heartbeat of a
        registered device without open alerts or recent occurrences, its battery not low, is a
        sighting and nothing else, the state unchanged, as the whole way decides. Anything
        else is None: the whole way (tests/unit/test_engine.py holds the two equal)."""
        sighting = self.quiet_sighting(state, event)
        if sighting is None:
            return None
        return Evaluation(state=state, decisions=(RecordSighting(sighting=sighting),))

    def quiet_sighting(self, state: DeviceState, event: Heartbeat) -> Sighting | None:
        """The sighting that is all a quiet heartbeat decides (see ``_quiet_heartbeat``), or
        None: ``evaluate`` it. For a caller that needs no Evaluation of it (ingest's store)."""
        device = state.device
        if device is None or event.retained or state.open_alerts or state.recent:
            return None
        if event.battery is not None:
            low = self._low_battery.get(device.model)
            if low is not None and event.battery <= low:
                return None
        return _sighting(event)


def device_silent(
    engine: RulesEngine, device: DeviceInfo, last_heard: datetime, now: datetime
) -> RaiseAlert:
    """Link supervision: the device has not been heard from for its model's window."""
    categories = device.elder_categories
    return RaiseAlert(
        device_id=device.device_id,
        elder_id=device.elder_id,
        type=AlertType.DEVICE_OFFLINE,
        category=ALERT_KINDS[AlertType.DEVICE_OFFLINE].category,
        priority=engine.rules.priority_of(AlertType.DEVICE_OFFLINE, categories),
        occurred_at=now,
        attributes={
            "last_heard": last_heard.isoformat(),
            "silent_s": int((now - last_heard).total_seconds()),
        },
    )


class _Run:
    """One evaluation: the state as it evolves and the decisions taken so far."""

    def __init__(self, engine: RulesEngine, state: DeviceState, now: datetime) -> None:
        self.engine, self.state, self.now = engine, state, now
        self.open = dict(state.open_alerts)
        self.recent = [t for t in state.recent if now - t < RATE_WINDOW]
        self.vitals = dict(state.vitals)
        self.decisions: list[Decision] = []

    def result(self) -> Evaluation:
        state, recent = self.state, tuple(self.recent)
        # Most events (a heartbeat) change nothing of it: the same state, not a copy.
        if self.open != state.open_alerts or recent != state.recent or self.vitals != state.vitals:
            state = replace(state, open_alerts=self.open, recent=recent, vitals=self.vitals)
        return Evaluation(state=state, decisions=tuple(self.decisions))

    def decide(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def raise_alert(
        self,
        alert: AlertType,
        event: DeviceEvent,
        attributes: Mapping[str, Any] | None = None,
        location: Mapping[str, Any] | None = None,
        acknowledge_device: bool = False,
    ) -> None:
        repeat = alert in self.open
        limit = self.engine.rules.rate_limit.per_device_per_minute
        # A stuck button: counted enough for this minute. An SOS is still answered (the
        # device is told again) but adds nothing; anything else is left at that.
        counted = not (repeat and len(self.recent) >= limit)
        if not counted and not acknowledge_device:
            return
        if counted:
            self.recent.append(self.now)
        device = self.state.device
        categories = device.elder_categories if device else frozenset()
        details = dict(attributes or {})
        if event.seq is not None:
            details.setdefault("seq", event.seq)
        if event.clock_skew_s is not None:
            details.setdefault("clock_skew_s", event.clock_skew_s)
        if event.retained:
            details["retained"] = True  # replayed by the broker: maybe old news
        self.decide(
            RaiseAlert(
                device_id=self.state.device_id,
                elder_id=device.elder_id if device else None,
                type=alert,
                category=ALERT_KINDS[alert].category,
                priority=self.engine.rules.priority_of(alert, categories),
                occurred_at=event.occurred_at,
                location=location,
                attributes=details,
                acknowledge_device=acknowledge_device,
                seq=event.seq,
                counted=counted,
            )
        )
        if not repeat:
            self.open[alert] = OpenAlert(type=alert, since=event.occurred_at)

    def resolve(self, alert: AlertType, reason: str) -> None:
        if self.open.pop(alert, None) is not None:
            self.decide(ResolveAlert(device_id=self.state.device_id, type=alert, reason=reason))

    def note(self, alert: AlertType, action: str, detail: Mapping[str, Any]) -> None:
        if alert in self.open:
            self.decide(
                NoteOnAlert(
                    device_id=self.state.device_id, type=alert, action=action, detail=detail
                )
            )

    def sos(self, event: SosPressed) -> None:
        # An SOS is never dropped: an unregistered device or an unreadable payload still
        # raises the alarm, marked so the dispatcher knows what they are looking at.
        attributes: dict[str, Any] = dict(event.attributes)
        if event.trigger:
            attributes["trigger"] = event.trigger
        if event.payload_error:
            attributes["payload_error"] = event.payload_error
        if self.state.device is None:
            attributes["unregistered_device"] = True
        self.raise_alert(
            AlertType.SOS, event, attributes, location=event.location, acknowledge_device=True
        )

    def sensor(self, event: SensorEvent) -> None:
        detail = {"zone": event.zone} if event.zone else {}
        if event.contact_id:
            detail["cid"] = event.contact_id
        if _quieted(self.state.device, technical=event.type in TECHNICAL_EVENTS):
            return
        if event.type in EMERGENCY_EVENTS:
            alert = EMERGENCY_EVENTS[event.type]
            if event.restore:
                self.note(alert, "restored", {"by": "device", **detail})
            else:
                self.raise_alert(alert, event, {**event.attributes, **detail})
        elif event.type in TECHNICAL_EVENTS:
            alert, _ = TECHNICAL_EVENTS[event.type]
            if event.restore:
                self.resolve(alert, f"{event.type} restored")
            else:
                self.raise_alert(alert, event, {"event": event.type, **detail})
        elif event.type in RESTORING_EVENTS:
            self.resolve(RESTORING_EVENTS[event.type], event.type)
        elif event.type == "service_request" and not event.restore:
            self.raise_alert(AlertType.SERVICE_REQUEST, event, detail)
        elif event.type == "cancel":
            self.cancel_fall(event)

    def welfare(self, event: SensorEvent) -> None:
        """Night door, and the deadlines of the time rules. Only an active device's word
        counts: one retired or in maintenance may be on a shelf or in a technician's hands."""
        device = self.state.device
        if device is None or device.status != DeviceStatus.ACTIVE.value or event.retained:
            return
        if event.restore:
            return
        plan = self.engine.plan_of(device)
        model = self.engine.catalogue.get(device.model)
        if event.type == "door_open" and plan is not None and plan.wandering:
            if at_night(event_time(event), plan, self.engine.rules.welfare.zone):
                detail = {"zone": event.zone} if event.zone else {}
                self.raise_alert(AlertType.NIGHT_DOOR, event, detail)
        elif event.type == "door_close":
            self.note(AlertType.NIGHT_DOOR, "door_closed", {"by": "device"})
        elif event.type == "test":
            self.resolve(AlertType.TEST_OVERDUE, "test received")
        self.decisions.extend(
            on_event(self.engine.rules, model, device, plan, event, self.state.elder_open)
        )

    def cancel_fall(self, event: SensorEvent) -> None:
        fall = self.open.get(AlertType.FALL)
        if fall is None:
            return
        window = timedelta(seconds=self.engine.rules.fall.cancel_window_s)
        if event.occurred_at - fall.since <= window:
            del self.open[AlertType.FALL]
            self.decide(
                CancelAlert(
                    device_id=self.state.device_id,
                    type=AlertType.FALL,
                    reason="cancelled on the device within the cancel window",
                )
            )
        else:
            # Too late to withdraw by itself: the dispatcher sees the elder pressed cancel.
            self.note(AlertType.FALL, "cancel_after_window", {})

    def temperature(self, event: TelemetryReport) -> None:
        if _quieted(self.state.device, technical=False):
            return
        value = event.metrics.get("temperature_c")
        if value is None:
            return
        rule = self.engine.rules.temperature
        reading = {"temperature_c": value}
        if value >= rule.heat_c:
            self.raise_alert(AlertType.HEAT, event, reading)
        elif value < rule.heat_c - rule.hysteresis_c:
            self.resolve(AlertType.HEAT, f"temperature back to {value} °C")
        if value <= rule.cold_c:
            self.raise_alert(AlertType.COLD, event, reading)
        elif value > rule.cold_c + rule.hysteresis_c:
            self.resolve(AlertType.COLD, f"temperature back to {value} °C")

    def vital_signs(self, event: TelemetryReport) -> None:
        """Heart rate or SpO2 that stays out of range raises ``vital_signs``; a single odd
        reading does not. Back in range: noted on the open alert, which a person closes."""
        if _quieted(self.state.device, technical=False):
            return
        rule = self.engine.rules.vitals
        bands = {
            "heart_rate": (rule.heart_rate_low, rule.heart_rate_high),
            "spo2": (rule.spo2_low, float("inf")),
        }
        for metric, (low, high) in bands.items():
            value = event.metrics.get(metric)
            if value is None or value <= 0:
                continue
            run = self.vitals.get(metric)
            if low <= value <= high:
                if self.vitals.pop(metric, None) is not None:
                    self.note(AlertType.VITAL_SIGNS, "back_in_range", {metric: value})
                continue
            since = run.since if run is not None else event.occurred_at
            readings = run.readings + 1 if run is not None else 1
            self.vitals[metric] = VitalRun(readings=readings, since=since, value=value)
            lasted = (event.occurred_at - since).total_seconds()
            if readings >= rule.readings and lasted >= rule.sustained_s:
                self.raise_alert(
                    AlertType.VITAL_SIGNS,
                    event,
                    {
                        "metric": metric,
                        metric: value,
                        "readings": readings,
                        "out_of_range_since": since.isoformat(),
                        "range": [low, None if high == float("inf") else high],
                    },
                )

    def battery(self, event: DeviceEvent, level: float) -> None:
        device = self.state.device
        if _quieted(device, technical=True):
            return
        model = self.engine.catalogue.get(device.model) if device else None
        if model is None or model.battery is None:
            return
        low = model.battery.low_pct
        if level <= low:
            if AlertType.LOW_BATTERY not in self.open:
                critical = level <= model.battery.critical_pct
                self.raise_alert(
                    AlertType.LOW_BATTERY, event, {"battery": level, "critical": critical}
                )
        elif level >= low + self.engine.rules.battery.hysteresis_pct:
            self.resolve(AlertType.LOW_BATTERY, f"battery at {level}%")


def _quieted(device: DeviceInfo | None, *, technical: bool) -> bool:
    """A retired device raises no alarms but an SOS; one in maintenance no technical ones."""
    if device is None:
        return False
    if device.status == DeviceStatus.RETIRED.value:
        return True
    return technical and device.status == DeviceStatus.MAINTENANCE.value


def _sign_of_life(event: DeviceEvent) -> bool:
    """A retained message is replayed by the broker, and a last will says the link dropped."""
    if event.retained:
        return False
    return not (isinstance(event, AvailabilityChanged) and not event.online)


def _sighting(event: DeviceEvent) -> Sighting:
    return Sighting(
        device_id=event.device_id,
        seen_at=event.received_at,
        battery=event.battery,
        online=True,
    )
