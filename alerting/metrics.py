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
