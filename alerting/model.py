"""The names of contract §2: alert types, categories, priorities, statuses and outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    EMERGENCY = "emergency"
    SERVICE = "service"
    WELFARE = "welfare"
    TECHNICAL = "technical"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent: the queue sorts on it."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


class AlertStatus(StrEnum):
    NEW = "new"
    CLAIMED = "claimed"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset(
    {AlertStatus.NEW, AlertStatus.CLAIMED, AlertStatus.ACKNOWLEDGED, AlertStatus.ESCALATED}
)


class Outcome(StrEnum):
    FALSE_ALARM = "false_alarm"
    RESOLVED_BY_PHONE = "resolved_by_phone"
    FAMILY_NOTIFIED = "family_notified"
    COMMUNITY_WORKER_DISPATCHED = "community_worker_dispatched"
    AMBULANCE_120 = "ambulance_120"
    FIRE_119 = "fire_119"
    POLICE_110 = "police_110"
    DEVICE_FAULT = "device_fault"
    # Someone must go and look: makes a home visit for the alert's elder (alerting/visits.py).
    VISIT_NEEDED = "visit_needed"
    OTHER = "other"


class AlertType(StrEnum):
    SOS = "sos"
    FALL = "fall"
    SMOKE = "smoke"
    GAS = "gas"
    CO = "co"
    WATER_LEAK = "water_leak"
    HEAT = "heat"
    COLD = "cold"
    INACTIVITY = "inactivity"
    CHECKIN_MISSED = "checkin_missed"
    NIGHT_DOOR = "night_door"
    BED_NOT_VACATED = "bed_not_vacated"
    DEVICE_OFFLINE = "device_offline"
    LOW_BATTERY = "low_battery"
    POWER_LOSS = "power_loss"
    TAMPER = "tamper"
    TEST_OVERDUE = "test_overdue"
    SERVICE_REQUEST = "service_request"
    # An alarm the device raised without saying of what kind (a 4G watch's AL with no status
    # bit set): not an SOS, but a person checks it.
    DEVICE_ALARM = "device_alarm"
    # Heart rate or SpO2 from a wearable stayed out of range (the [vitals] rule).
    VITAL_SIGNS = "vital_signs"
    # A home visit found the elder needing help (its outcome needed_help).
    VISIT_NEEDED_HELP = "visit_needed_help"


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertKind:
    """Where an alert type sits in the queue unless a rule says otherwise."""

    category: Category
    priority: Priority


_E, _W, _T, _S = Category.EMERGENCY, Category.WELFARE, Category.TECHNICAL, Category.SERVICE
_C, _H, _M, _L = Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW

ALERT_KINDS: dict[AlertType, AlertKind] = {
    AlertType.SOS: AlertKind(category=_E, priority=_C),
    AlertType.FALL: AlertKind(category=_E, priority=_C),
    AlertType.SMOKE: AlertKind(category=_E, priority=_C),
    AlertType.GAS: AlertKind(category=_E, priority=_C),
    AlertType.CO: AlertKind(category=_E, priority=_C),
    AlertType.WATER_LEAK: AlertKind(category=_E, priority=_H),
    AlertType.HEAT: AlertKind(category=_E, priority=_H),
    AlertType.COLD: AlertKind(category=_E, priority=_H),
    AlertType.INACTIVITY: AlertKind(category=_W, priority=_H),
    AlertType.CHECKIN_MISSED: AlertKind(category=_W, priority=_M),
    AlertType.NIGHT_DOOR: AlertKind(category=_W, priority=_H),
    AlertType.BED_NOT_VACATED: AlertKind(category=_W, priority=_H),
    AlertType.DEVICE_OFFLINE: AlertKind(category=_T, priority=_M),
    AlertType.LOW_BATTERY: AlertKind(category=_T, priority=_L),
    AlertType.POWER_LOSS: AlertKind(category=_T, priority=_M),
    AlertType.TAMPER: AlertKind(category=_T, priority=_M),
    AlertType.TEST_OVERDUE: AlertKind(category=_T, priority=_L),
    AlertType.SERVICE_REQUEST: AlertKind(category=_S, priority=_L),
    AlertType.DEVICE_ALARM: AlertKind(category=_E, priority=_H),
    AlertType.VITAL_SIGNS: AlertKind(category=_E, priority=_H),
    AlertType.VISIT_NEEDED_HELP: AlertKind(category=_W, priority=_H),
}
