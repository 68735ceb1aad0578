"""Prometheus metrics of the watch gateway (the link's own are in gateways/link.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("anxin_watch_connections", "Open TCP connections of watches")
CONNECTIONS_OPENED = Counter("anxin_watch_connections_accepted_total", "TCP connections accepted")
CONNECTIONS_CLOSED = Counter(
    "anxin_watch_connections_closed_total",
    "TCP connections closed, by why (eof, idle, replaced, reset, slow_reader, full, stopping)",
    ["reason"],
)
REPLACED = Counter(
    "anxin_watch_connections_replaced_total",
    "A watch id's connection replaced by a newer one of the same id",
)
FRAMES = Counter(
    "anxin_watch_frames_total", "Frames read, by type (UD, AL, LK …, unknown)", ["type"]
)
REPLIES = Counter("anxin_watch_replies_total", "Replies written to watches, by type", ["type"])
BAD_FRAMES = Counter(
    "anxin_watch_bad_frames_total",
    "Input that made no usable frame, by problem (junk, too_large, header, unreadable)",
    ["problem"],
)
JUNK_BYTES = Counter("anxin_watch_skipped_bytes_total", "Bytes outside any frame, skipped")
LENGTH_MISMATCHES = Counter(
    "anxin_watch_length_mismatches_total",
    "Frames whose length field is not their content's length (read anyway)",
)
UNKNOWN_TYPES = Counter(
    "anxin_watch_unknown_types_total", "Frames of a type the gateway does not know"
)
NOT_PUBLISHED = Counter(
    "anxin_watch_unanswered_total",
    "Frames left unanswered because the broker or anxin did not take them (the watch resends)",
    ["type", "why"],
)
ALARMS_WAITED = Counter(
    "anxin_watch_alarm_waits_total",
    "AL frames with an SOS waited on for anxin's Ack received, by outcome",
    ["outcome"],
)
ALARM_REPEATS = Counter(
    "anxin_watch_alarm_repeats_total",
    "AL frames repeated while the same alarm (same seq) was already being waited on",
)
DOWNLINKS = Counter(
    "anxin_watch_downlinks_total",
    "Acks and Commands written to a watch, by what (ack_received, locate, gps_on …)",
    ["what"],
)
DOWNLINKS_DROPPED = Counter(
    "anxin_watch_downlinks_dropped_total",
    "Acks and Commands for a watch that could not be sent, by why (not_connected, unmappable)",
    ["why"],
)
REFUSED = Counter(
    "anxin_watch_refused_frames_total",
    "Frames from ids not in ANXIN_WATCH_ALLOWED_IDS_FILE, dropped (their SOS is still raised)",
)
RATE_LIMITED = Counter(
    "anxin_watch_rate_limited_total",
    "Times a connection was held back for sending frames faster than its bound",
)
