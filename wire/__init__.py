"""fieldlink wire protocol v1: topic names and payload schemas shared by server and agent.

Depends on the standard library and marshmallow only, so the edge agent can import it
without Flask or the server's models.
"""

from wire.messages import (
    ACK_STATUSES,
    ALARM_KINDS,
    MAX_BATCH,
    MAX_PAYLOAD_BYTES,
    ORDER_KINDS,
    Text,
    WireError,
    decode,
    encode,
    fix_problem,
    load_alarm,
    parse_json,
    unwritable,
    validate_message,
)
from wire.topics import CHANNELS, DEFAULT_ROOT, Channel, Topics

__all__ = [
    "ACK_STATUSES",
    "ALARM_KINDS",
    "CHANNELS",
    "DEFAULT_ROOT",
    "MAX_BATCH",
    "MAX_PAYLOAD_BYTES",
    "ORDER_KINDS",
    "Channel",
    "Text",
    "Topics",
    "WireError",
    "decode",
    "encode",
    "fix_problem",
    "load_alarm",
    "parse_json",
    "unwritable",
    "validate_message",
]
