"""Receipts: the server tells each unit what it has stored, so that it may leave the unit's
outbox. A broker's acknowledgement only says the broker has it, and a broker can lose what
it has not yet saved; a receipt says the store has it.

Alarms and acks are confirmed one by one as soon as they are handled, on the session
orders go by; positions by a high-water mark per unit (every fix up to that time is
stored), at most every `interval_s` (how many seconds of fixes a unit holds on to), on the
positions' session, where a city's thousands of them queue behind nothing urgent. The
server builds them itself, so they are not validated again (the golden sample in
tests/wire/test_wire.py holds them to the schema): that took 13 us a receipt.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from server.runtime import clock
from wire import Channel, Topics

log = logging.getLogger(__name__)


class Receipts:
    def __init__(
        self,
        publish: Callable[[str, bytes, Channel], None],
        topics: Topics,
        interval_s: float,
        publish_bulk: Callable[[str, bytes, Channel], None] | None = None,
    ):
        self.publish = publish
        self.publish_bulk = publish_bulk or publish
        self.topics = topics
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._marks: dict[str, float] = {}  # unit -> newest fix time stored since the last

    def alarm(self, unit_id: str, alarm_id: str) -> None:
        self._send(unit_id, {"alarms": [alarm_id]})

    def ack(self, unit_id: str, order_id: str, status: str) -> None:
        self._send(unit_id, {"acks": [{"order_id": order_id, "status": status}]})

    def positions(self, unit_id: str, newest_ts: float) -> None:
        """Called by the store writer once a unit's fixes are stored."""
        with self._lock:
            self._marks[unit_id] = max(newest_ts, self._marks.get(unit_id, newest_ts))

    def flush(self) -> int:
        with self._lock:
            marks, self._marks = self._marks, {}
        for unit_id, newest in marks.items():
            self._send(unit_id, {"positions": newest}, self.publish_bulk)
        return len(marks)

    def _send(
        self,
        unit_id: str,
        receipt: dict[str, Any],
        publish: Callable[[str, bytes, Channel], None] | None = None,
    ) -> None:
        payload = json.dumps({"ts": clock.now(), **receipt}, separators=(",", ":")).encode()
        send = publish or self.publish
        send(self.topics.unit(unit_id, Channel.RECEIPT), payload, Channel.RECEIPT)
