"""Prometheus metrics of the ingest path (the process-wide default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("anxin_messages_total", "MQTT messages taken in, by uplink kind", ["kind"])
DEAD_LETTERS = Counter("anxin_dead_letters_total", "Messages stored as dead letters", ["kind"])
ALERTS_RAISED = Counter("anxin_alerts_raised_total", "New alerts opened", ["type"])
ALERTS_COALESCED = Counter(
    "anxin_alerts_coalesced_total", "Repeats counted on an open alert", ["type"]
)
BATCH_SIZE = Histogram(
    "anxin_ingest_batch_messages",
    "Messages per stored batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
BATCH_SECONDS = Histogram(
    "anxin_ingest_batch_seconds",
    "Time to decode, decide and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_FAILURES = Counter(
    "anxin_ingest_batch_failures_total", "Batches whose commit failed and were retried"
)
INBOX_DEPTH = Gauge("anxin_ingest_inbox_messages", "Messages received and not yet stored")
INBOX_DROPPED = Counter(
    "anxin_ingest_inbox_dropped_total", "QoS 0 messages dropped because the inbox was full"
)
MQTT_CONNECTED = Gauge("anxin_mqtt_connected", "1 while connected to the broker")
VITAL_RUNS = Gauge(
    "anxin_ingest_vital_runs", "Devices with vital signs out of range in a row, kept in memory"
)
VITAL_RUNS_FORGOTTEN = Counter(
    "anxin_ingest_vital_runs_forgotten_total",
    "Runs of vital signs out of range forgotten: idle (no reading for an hour, or twice the"
    " rule's span) or limit (beyond 100,000 devices, the least recently added to)",
    ["reason"],
)

# Telemetry to InfluxDB (ingest/telemetry): never on the path of alerts.
TELEMETRY_POINTS_WRITTEN = Counter(
    "anxin_telemetry_points_written_total", "Telemetry points the store accepted"
)
TELEMETRY_BATCHES_WRITTEN = Counter(
    "anxin_telemetry_batches_written_total", "Write requests the store accepted"
)
TELEMETRY_RETRIES = Counter(
    "anxin_telemetry_write_failures_total",
    "Write requests that failed because the store was away or refusing; their batch waits in"
    " the spool and is tried again",
)
TELEMETRY_DROPPED = Counter(
    "anxin_telemetry_points_dropped_total",
    "Telemetry points given up: spool_full (the oldest, at the spool's bound), refused (the"
    " store will never take them), unwritable (no field InfluxDB accepts), spool_failed (the"
    " spool's disk refused the batch)",
    ["reason"],
)
TELEMETRY_BUFFER = Gauge(
    "anxin_telemetry_buffer_points", "Telemetry points in memory, waiting for their batch"
)
TELEMETRY_SPOOL_POINTS = Gauge("anxin_telemetry_spool_points", "Telemetry points in the spool")
TELEMETRY_SPOOL_BYTES = Gauge("anxin_telemetry_spool_bytes", "Size of the spool's batches")
TELEMETRY_SPOOL_AGE = Gauge(
    "anxin_telemetry_spool_oldest_age_seconds",
    "Age of the oldest point in the spool (0 when it is empty)",
)
