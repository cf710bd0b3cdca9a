"""The processing order: per channel, the chain of small steps a unit's message goes
through in the worker, as one table (`STEPS`, at the end). Each step takes the pipeline and
the message on its way; each is guarded on its own (`Pipeline.on_inbound`), so one that
fails is counted and the next still runs. Adding a step is one function and one entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.orders import OrderRefused, acks, alarms, arrival_watch, presence
from server.rules.alarms import pressed_at
from server.runtime import metrics
from server.runtime.log_limit import LimitedLog
from wire import Channel

if TYPE_CHECKING:
    from server.ingest.pipeline import Delivery, Pipeline

# a unit sending the same trouble thousands of times must not fill the disk with lines
limited = LimitedLog(logging.getLogger(__name__))

FUTURE_TOLERANCE_S = 300.0
STATE_PAST_S = 30 * 86400.0  # a retained state may be weeks old (the broker keeps it)


Step = Callable[["Pipeline", "Delivery"], None]


def heard(p: Pipeline, d: Delivery) -> None:
    """Any message from a unit says it is online (a state message says itself)."""
    presence.heard(p.book, d.unit.unit_id, d.message.received_at)


def drop_future(_p: Pipeline, d: Delivery) -> None:
    """A fix dated ahead of the server's clock would hold the unit's place on the map."""
    horizon = d.message.received_at + FUTURE_TOLERANCE_S
    good = [f for f in d.body if f["ts"] <= horizon]
    if len(good) < len(d.body):
        metrics.REJECTED.labels("mqtt", "future").inc(len(d.body) - len(good))
        limited.warning(
            "future", "unit %s sent %d future-dated fixes", d.unit.unit_id, len(d.body) - len(good)
        )
    d.body = good


def move_live_state(p: Pipeline, d: Delivery) -> None:
    if d.body:
        p.live.apply_fixes(d.unit.unit_id, d.body)


def place_waiting_call(p: Pipeline, d: Delivery) -> None:
    """The unit's own call for help had no place: this fix gives it one."""
    if d.body and d.unit.unit_id in p.book.unplaced_calls:
        alarms.place_call_by_fix(p.book, d.unit.unit_id, max(d.body, key=lambda f: f["ts"]))


def watch_arrival(p: Pipeline, d: Delivery) -> None:
    if d.body and d.unit.targets:
        arrival_watch.on_fixes(p.book, d.unit, d.body)


def store_positions(p: Pipeline, d: Delivery) -> None:
    """Written in batches; acknowledged to the broker and confirmed to the unit once stored."""
    message, unit_id = d.message, d.unit.unit_id
    rows = [{"unit_id": unit_id, "received_at": message.received_at, **fix} for fix in d.body]
    receipts = p.receipts

    def stored() -> None:
        p.ingest.ack(message)
        if receipts is not None and rows:
            receipts.positions(unit_id, max(row["ts"] for row in rows))

    p.writer.put(rows, stored)
    d.acked_when_stored = True


def raise_alarm(p: Pipeline, d: Delivery) -> None:
    dropped = d.body.pop("dropped", None)
    if dropped:
        metrics.REJECTED.labels("mqtt", "alarm_part").inc(len(dropped))
        limited.warning(
            "alarm_part", "alarm from %s kept without: %s", d.unit.unit_id, "; ".join(dropped)
        )
    d.outcome = alarms.on_alarm(p.book, d.unit.unit_id, d.body, d.message.received_at, dropped)


def confirm_alarm(p: Pipeline, d: Delivery) -> None:
    """Stored, also when it was a redelivery: only now may it leave the unit's outbox."""
    if not d.failed and p.receipts is not None:
        p.receipts.alarm(d.unit.unit_id, d.body["alarm_id"])


def apply_ack(p: Pipeline, d: Delivery) -> None:
    ack, unit_id = d.body, d.unit.unit_id
    try:
        acks.on_ack(
            p.book,
            unit_id,
            ack["order_id"],
            ack["status"],
            actor=f"agent:{unit_id}",
            reason=ack.get("reason", ""),
            device_ts=ack["ts"],
            received_at=d.message.received_at,
        )
    except OrderRefused as exc:  # answered for good: it will never apply
        metrics.REJECTED.labels("mqtt", "ack").inc()
        limited.warning("ack", "ack from %s rejected: %s", unit_id, exc)


def confirm_ack(p: Pipeline, d: Delivery) -> None:
    if not d.failed and p.receipts is not None:
        p.receipts.ack(d.unit.unit_id, d.body["order_id"], d.body["status"])


def plausible_state_time(_p: Pipeline, d: Delivery) -> None:
    """An online/offline time ahead of the server's clock, or from before any retained state
    could be (1970 from a Pi without a clock), is taken as the time it came."""
    judged = pressed_at(d.body["ts"], d.message.received_at, d.message.received_at - STATE_PAST_S)
    if judged.distrust:
        metrics.DEVICE_TIME_DISTRUSTED.labels("state").inc()
        limited.warning("state_time", "unit %s state time: %s", d.unit.unit_id, judged.distrust)
    d.body["ts"] = judged.ts


def set_online(p: Pipeline, d: Delivery) -> None:
    presence.on_unit_online(p.book, d.unit.unit_id, d.body["online"], d.body["ts"])


def keep_health(_p: Pipeline, d: Delivery) -> None:
    d.unit.health = d.body


def measure_clock(p: Pipeline, d: Delivery) -> None:
    """How far the unit's clock is from the server's, from its health reports' times (not
    from retained state: that may be days old)."""
    p.live.clock_sample(d.unit.unit_id, d.message.received_at - d.body["ts"])


# The processing order, per channel: adding a step is one function and one entry here.
STEPS: dict[Channel, tuple[Step, ...]] = {
    Channel.POSITION: (
        heard,
        drop_future,
        move_live_state,
        place_waiting_call,
        watch_arrival,
        store_positions,
    ),
    Channel.ALARM: (heard, raise_alarm, confirm_alarm),
    Channel.ACK: (heard, apply_ack, confirm_ack),
    Channel.STATE: (plausible_state_time, set_online),
    Channel.HEALTH: (heard, keep_health, measure_clock),
}
