"""Dispatch orders from the server, and the unit's answers to them (acks).

Every valid order is answered at once with a `received` ack. An order the server sends
again (it never saw our ack, or the broker redelivered) is answered with `received` again,
which the server ignores as a duplicate, and raises no new event: no second buzz. What is
known is kept beside the outbox, so this holds across a restart of the agent too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import wire
from edge_agent.outbox import Uplink
from wire import Channel

log = logging.getLogger(__name__)

MAX_KNOWN = 1000  # orders remembered for dedupe; a shift sees far fewer

# What the officer can do, and the ack status each sends.
ANSWERS = {
    "accept": "accepted",
    "decline": "declined",
    "en_route": "en_route",
    "on_scene": "on_scene",
    "clear": "cleared",
}


class Orders:
    """Known orders, keyed by order_id, and the acks that go back to the server."""

    def __init__(self, uplink: Uplink, clock: Callable[[], float] = time.time):
        self.uplink = uplink
        self.clock = clock  # the unit's time (GPS until the system clock is synced)
        self.rejected = 0  # payloads that were not valid orders
        self.on_order: Callable[[dict[str, Any]], None] | None = None  # new order, update or cancel
        self.on_answer: Callable[[str, str], None] | None = None  # (order_id, status)
        self._known: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._sent: dict[str, set[str]] = {}  # order_id -> statuses already acked
        self._lock = threading.Lock()  # paho's thread receives, GPIO threads answer
        for order_id, body, acked in uplink.outbox.known_orders():
            self._known[order_id] = json.loads(body)
            self._sent[order_id] = set(filter(None, acked.split(",")))

    def _save(self, order_id: str) -> None:
        """Keep what is known of an order on disk, beside the outbox (call with the lock)."""
        self.uplink.outbox.remember_order(
            order_id,
            json.dumps(self._known[order_id]),
            ",".join(sorted(self._sent.get(order_id, ()))),
            keep=MAX_KNOWN,
        )

    def handle(self, payload: bytes) -> None:
        """A payload from the orders topic: validate, dedupe, ack `received`, raise the event."""
        try:
            order = wire.decode(Channel.ORDERS, payload)
        except wire.WireError as exc:
            self.rejected += 1
            log.warning("ignored an invalid order (%d so far): %s", self.rejected, exc)
            return
        with self._lock:
            is_new = self._remember(order)
        self._ack(order["order_id"], "received", again=True)
        if not is_new:
            log.info("order %s sent again; acked received, no new event", order["order_id"])
            return
        log.info(
            "order %s (%s, priority %s): %s",
            order["order_id"],
            order["kind"],
            order["priority"],
            order["summary"],
        )
        if self.on_order:
            self.on_order(order)

    def _remember(self, order: dict[str, Any]) -> bool:
        """Store the order; False when it is a re-send of one already known.

        The server stamps every message it sends: an update or a cancel of a known order
        carries a newer ts, a re-send the same (or, out of order, an older) one.
        """
        known = self._known.get(order["order_id"])
        if known is not None and order["ts"] <= known["ts"]:
            return False
        self._known[order["order_id"]] = order
        self._known.move_to_end(order["order_id"])
        while len(self._known) > MAX_KNOWN:
            old_id, _ = self._known.popitem(last=False)
            self._sent.pop(old_id, None)
        self._save(order["order_id"])
        return True

    def current(self) -> dict[str, Any] | None:
        """The newest order that is not cancelled and not cleared: what the buttons act on."""
        with self._lock:
            for order in reversed(self._known.values()):
                done = "cleared" in self._sent.get(order["order_id"], ())
                if order["kind"] != "cancel" and not done:
                    return order
        return None

    def answer(self, status: str, order_id: str | None = None) -> bool:
        """Send the officer's answer for `order_id` (default: the current order).

        Returns False when there is no such order or this status was already sent.
        """
        if order_id is None:
            order = self.current()
            order_id = order["order_id"] if order else None
        with self._lock:
            if order_id is None or order_id not in self._known:
                log.warning("no order %s to answer %s", order_id, status)
                return False
        if not self._ack(order_id, status, again=False):
            return False
        if self.on_answer:
            self.on_answer(order_id, status)
        return True

    def accept(self, order_id: str | None = None) -> bool:
        return self.answer(ANSWERS["accept"], order_id)

    def decline(self, order_id: str | None = None) -> bool:
        return self.answer(ANSWERS["decline"], order_id)

    def en_route(self, order_id: str | None = None) -> bool:
        return self.answer(ANSWERS["en_route"], order_id)

    def on_scene(self, order_id: str | None = None) -> bool:
        return self.answer(ANSWERS["on_scene"], order_id)

    def clear(self, order_id: str | None = None) -> bool:
        return self.answer(ANSWERS["clear"], order_id)

    def _ack(self, order_id: str, status: str, *, again: bool) -> bool:
        """Queue an ack; unless `again`, a status already sent for this order is not resent."""
        with self._lock:
            sent = self._sent.setdefault(order_id, set())
            if status in sent and not again:
                return False
            if status not in sent:
                sent.add(status)
                if order_id in self._known:
                    self._save(order_id)
        self.uplink.send(Channel.ACK, {"order_id": order_id, "ts": self.clock(), "status": status})
        return True
