"""What the clock does to the order book (every `FIELDLINK_TIMER_TICK_S`): orders past
their ack deadline go to the next unit, silent units go offline, wanted units are sent,
unheard alarms go to the commanders, units long on scene are alerted. Deadlines are in the
store: a restart picks them up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from server.orders import alarms, alerts, dispatching, presence, queries
from server.orders.context import OrderBook
from server.rules.lifecycle import escalation_due
from server.rules.refusals import refusal
from server.runtime import metrics
from server.store import audit


class Lease(Protocol):
    def hold(self) -> bool: ...

    def valid(self) -> bool: ...


def tick(book: OrderBook) -> int:
    """One turn of the timers; how many orders escalated."""
    now = book.clock()
    count = 0
    for order in queries.orders_past_deadline(now):
        if escalation_due(order.state, order.ack_deadline, now):
            waited = refusal("not_accepted_in", seconds=round(now - order.sent_at))
            dispatching.end_order(book, order, "timed_out", waited, "dispatch", True)
            metrics.ESCALATIONS.inc()
            count += 1
    presence.mark_silent_offline(book, now)
    dispatching.fill_wanted(book)
    alarms.escalate_unheard(book, now)
    alerts.on_scene_overdue(book, now)
    return count


class TimerTurn:
    """One turn of the timers for the runtime's clock, in the worker, and only where the
    timers' lease is (with several instances one runs them, so an order escalates once):
    renewed right before, and checked again once its turn in the worker comes."""

    def __init__(self, book: OrderBook, lease: Lease, in_worker: Callable[..., Any]):
        self.book, self.lease, self.in_worker = book, lease, in_worker

    def turn(self) -> None:
        if self.lease.hold():
            self.in_worker(self._if_ours)

    def _if_ours(self) -> int:
        """The lease may have lapsed while this waited in the queue: another instance may be
        running the timers by now. The audit trail is sealed here too: one sealer at a time."""
        if not self.lease.valid():
            return 0
        audit.seal()
        return tick(self.book)
