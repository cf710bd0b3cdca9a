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
STAGE_RESTARTS = Counter(
    "fieldlink_stage_restarts_total", "Background loops started again after an error", ["stage"]
)
ALARM_ESCALATIONS = Counter(
    "fieldlink_alarm_escalations_total",
    "Alarms no dispatcher acknowledged in time, sent on to the commanders",
)
ALARM_PRESSES_JOINED = Counter(
    "fieldlink_alarm_presses_joined_total",
    "Panic presses that joined their unit's call still open instead of opening a new one",
)
DEVICE_TIME_DISTRUSTED = Counter(
    "fieldlink_device_time_distrusted_total",
    "Acks, alarms and states whose device time was implausible (the receive time was used)",
    ["channel"],
)
CLOCK_OFFSET = Gauge(
    "fieldlink_unit_clock_offset_seconds",
    "Server clock minus the unit's, from its health reports (the smallest of the latest)",
    ["unit"],
)
