"""Prometheus metrics of escalation and notification (the process-wide default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ESCALATIONS = Counter(
    "anxin_escalations_total",
    "Automatic escalation steps taken, by kind (escalated, reminder, contacts, digest)",
    ["kind"],
)
NOTIFICATIONS = Counter(
    "anxin_notifications_total",
    "Notification delivery attempts, by channel and result (sent, retry, failed)",
    ["channel", "result"],
)
OUTBOX_PENDING = Gauge("anxin_notification_outbox_pending", "Notifications waiting to be delivered")

# Link supervision (alerting/supervision.py), set at each scheduler pass.
SUPERVISED_DEVICES = Gauge(
    "anxin_supervision_watched_devices", "Devices link supervision watches for silence"
)
SUPERVISION_QUEUED = Gauge(
    "anxin_supervision_heap_entries",
    "Deadlines in link supervision's heap: one per watched device, and at most"
    " 2 x watched + 10,000 (stale entries beyond that rebuild the heap)",
)
SUPERVISION_REBUILDS = Counter(
    "anxin_supervision_heap_rebuilds_total",
    "Times link supervision's heap was rebuilt from its live entries (too many stale ones)",
)
