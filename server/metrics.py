"""Prometheus metrics: what came in, what was rejected and why, how long dispatch took."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("fieldlink_messages_total", "MQTT messages processed, by channel", ["channel"])
REJECTED = Counter(
    "fieldlink_rejected_total",
    "Inputs rejected (MQTT, Socket.IO, REST), by source and reason",
    ["source", "reason"],
)
DUPLICATES = Counter(
    "fieldlink_duplicates_total", "Redelivered messages recognised and ignored", ["channel"]
)
POSITIONS_STORED = Counter("fieldlink_positions_stored_total", "Fixes written to the store")
STEP_FAILURES = Counter(
    "fieldlink_step_failures_total", "Processing steps that raised, by step", ["step"]
)
INBOX_DEPTH = Gauge("fieldlink_inbox_depth", "Messages waiting for the ingest worker")
ALARM_TO_ORDER = Histogram(
    "fieldlink_alarm_to_order_seconds",
    "Alarm received by the server to order sent",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
)
ESCALATIONS = Counter(
    "fieldlink_escalations_total", "Orders not accepted in time and sent to the next unit"
)
ROUTING_FAILURES = Counter(
    "fieldlink_routing_failures_total", "OSRM requests that failed (straight line used instead)"
)
