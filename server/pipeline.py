"""The ingest worker: every message from the broker and every command from a screen runs here.

One worker owns the live state and the order book, so their changes are serial and need no
locks. A unit's message goes through the steps its channel lists in `STEPS` (at the end of
this module), in order; each step is guarded on its own, so one that fails is counted and
logged and the next still runs, and the message is acknowledged to the broker once, at the
end of its chain (positions: by the store writer, once stored). Nothing a message holds can
stop the worker: whatever goes wrong with one message is caught at that message.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server import metrics
from server.ingest import BrokerConnected, Inbound, Inbox, MqttIngest
from server.live_state import LiveState, UnitState
from server.log_limit import LimitedLog
from server.orders import OrderRefused, OrderService
from server.receipts import Receipts
from server.store import Unit, db
from server.store_writer import StoreWriter
from server.supervise import Stage
from wire import Channel, Topics, WireError, decode
from wire.topics import TopicError

log = logging.getLogger(__name__)
# a unit sending garbage thousands of times must not fill the disk with the same line
limited = LimitedLog(log)

FUTURE_TOLERANCE_S = 300.0
UNKNOWN_UNIT_RECHECK_S = 10.0
DRAIN_MAX = 200


class Rejected(Exception):
    """A message that will never be processed; `reason` becomes a metric label."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class Call:
    """A command from a Socket.IO handler or a timer, run in the worker; the caller may wait."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    awaited: bool = False  # by `Pipeline.call`; the worker reports the others' failures

    def wait(self, timeout: float) -> Any:
        if not self.done.wait(timeout):
            raise TimeoutError("the server is busy; try again")
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class Delivery:
    """One unit's message on its way through its channel's steps."""

    unit: UnitState
    channel: Channel
    body: Any
    message: Inbound
    failed: list[str] = field(default_factory=list)  # the steps that raised
    acked_when_stored: bool = False  # handed to the store writer, which acknowledges it
    outcome: Any = None  # what a step leaves for the next (the alarm's incident)


class Pipeline:
    def __init__(
        self,
        topics: Topics,
        inbox: Inbox,
        ingest: MqttIngest,
        live: LiveState,
        orders: OrderService,
        writer: StoreWriter,
        receipts: Receipts | None = None,
    ):
        self.topics = topics
        self.inbox = inbox
        self.ingest = ingest
        self.live = live
        self.orders = orders
        self.writer = writer
        self.receipts = receipts
        self.running = False
        self.stage = Stage("worker")
        self._unknown: dict[str, float] = {}

    # -- the worker loop ---------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0, **kwargs: Any) -> Any:
        """Run `fn` in the worker (ahead of positions) and return its result."""
        item = Call(fn, args, kwargs, awaited=True)
        self.inbox.put(item, urgent=True)
        return item.wait(timeout)

    def run(self) -> None:
        self.running = True
        db.connect(reuse_if_open=True)
        try:
            while self.running:
                self.stage.beat()
                self._drain_urgent()
                try:
                    item = self.inbox.bulk.get(timeout=0.5)
                except queue.Empty:
                    continue
                self._handle(item)
                for _ in range(DRAIN_MAX):
                    try:
                        item = self.inbox.bulk.get_nowait()
                    except queue.Empty:
                        break
                    self._handle(item)
                    if not self.inbox.urgent.empty():
                        self._drain_urgent()
                metrics.INBOX_DEPTH.set(self.inbox.bulk.qsize())
        finally:
            db.close()

    def stop(self) -> None:
        self.running = False
        self.inbox.put(None)

    def _drain_urgent(self) -> None:
        while True:
            try:
                item = self.inbox.urgent.get_nowait()
            except queue.Empty:
                return
            self._handle(item)

    def _handle(self, item: object) -> None:
        """One item; nothing it raises gets past here (the next item must still run)."""
        self.stage.beat()
        try:
            if isinstance(item, Inbound):
                self.on_inbound(item)
            elif isinstance(item, Call):
                self._run_call(item)
            elif isinstance(item, BrokerConnected):
                self._guarded("resend_orders", self.orders.resend_all_to_agents)
        except Exception:
            metrics.STEP_FAILURES.labels("worker").inc()
            limited.exception("worker", "the worker's item %r failed", type(item).__name__)

    def _run_call(self, item: Call) -> None:
        try:
            item.result = item.fn(*item.args, **item.kwargs)
        except Exception as exc:
            item.error = exc
            if not item.awaited:  # e.g. a terminal's delivery of an order since cancelled
                step = getattr(item.fn, "__name__", "call")
                metrics.STEP_FAILURES.labels(step).inc()
                refused = isinstance(exc, OrderRefused)
                log.log(
                    logging.WARNING if refused else logging.ERROR,
                    "%s failed: %s",
                    step,
                    exc,
                    exc_info=not refused,
                )
        finally:
            item.done.set()

    def _guarded(self, step: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Run one step; a failure is logged and counted and never stops the worker."""
        try:
            fn(*args)
            return True
        except Exception:
            metrics.STEP_FAILURES.labels(step).inc()
            limited.exception(step, "step %s failed", step)
            return False

    # -- one message from the broker -----------------------------------------------------
    def on_inbound(self, message: Inbound) -> None:
        """Accept the message, run its channel's steps, acknowledge it once."""
        delivery = None
        try:
            delivery = self._accept(message)
        except Rejected as rejected:
            metrics.REJECTED.labels("mqtt", rejected.reason).inc()
            limited.warning(rejected.reason, "rejected %s: %s", message.topic[:200], rejected)
        except Exception:  # anything else a message could do: refused the same way, counted
            metrics.REJECTED.labels("mqtt", "unreadable").inc()
            limited.exception("unreadable", "could not read %s", message.topic[:200])
        if delivery is not None:
            COUNTED[delivery.channel].inc()
            for step in STEPS[delivery.channel]:
                if not self._guarded(step.__name__, step, self, delivery):
                    delivery.failed.append(step.__name__)
        if delivery is None or not delivery.acked_when_stored:
            self.ingest.ack(message)  # handled, or rejected for good: never redelivered

    def _accept(self, message: Inbound) -> Delivery:
        try:
            unit_id, channel = self.topics.parse(message.topic)
        except TopicError as exc:
            raise Rejected("topic", str(exc)) from None
        if channel not in STEPS:
            raise Rejected("topic", f"units do not publish on their {channel.value} topic")
        unit = self.known_unit(unit_id)
        if unit is None:
            raise Rejected("unknown_unit", f"no unit {unit_id!r} is provisioned")
        try:
            body = decode(channel, message.payload)
        except WireError as exc:
            raise Rejected("invalid", str(exc)) from None
        return Delivery(unit, channel, body, message)

    def known_unit(self, unit_id: str) -> UnitState | None:
        """The unit from live state, or from the store if it was provisioned since start-up."""
        unit = self.live.get(unit_id)
        if unit is not None:
            return unit
        now = time.monotonic()
        if now - self._unknown.get(unit_id, -UNKNOWN_UNIT_RECHECK_S) < UNKNOWN_UNIT_RECHECK_S:
            return None
        row = Unit.get_or_none(Unit.id == unit_id)
        if row is None:
            self._unknown[unit_id] = now
            return None
        self._unknown.pop(unit_id, None)
        unit = UnitState.from_row(row)
        self.live.add(unit)
        return unit


# -- the steps: each takes the pipeline and the message on its way ------------------------
Step = Callable[[Pipeline, Delivery], None]


def heard(p: Pipeline, d: Delivery) -> None:
    """Any message from a unit says it is online (a state message says itself)."""
    p.orders.heard(d.unit.unit_id, d.message.received_at)


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
    if d.body and d.unit.unit_id in p.orders.unplaced_calls:
        p.orders.place_call_by_fix(d.unit.unit_id, max(d.body, key=lambda f: f["ts"]))


def watch_arrival(p: Pipeline, d: Delivery) -> None:
    if d.body and d.unit.targets:
        p.orders.on_fixes(d.unit, d.body)


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
    d.outcome = p.orders.on_alarm(d.unit.unit_id, d.body, d.message.received_at, dropped)


def confirm_alarm(p: Pipeline, d: Delivery) -> None:
    """Stored, also when it was a redelivery: only now may it leave the unit's outbox."""
    if not d.failed and p.receipts is not None:
        p.receipts.alarm(d.unit.unit_id, d.body["alarm_id"])


def apply_ack(p: Pipeline, d: Delivery) -> None:
    ack, unit_id = d.body, d.unit.unit_id
    try:
        p.orders.on_ack(
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


def set_online(p: Pipeline, d: Delivery) -> None:
    p.orders.on_unit_online(d.unit.unit_id, d.body["online"], d.body["ts"])


def keep_health(_p: Pipeline, d: Delivery) -> None:
    d.unit.health = d.body


def measure_clock(p: Pipeline, d: Delivery) -> None:
    """How far the unit's clock is from the server's, from its health reports' times (not
    from retained state: that may be days old)."""
    p.live.clock_sample(d.unit.unit_id, d.message.received_at - d.body["ts"])


# each channel's message counter, looked up once (labels() per message was ~3 % of ingest)
COUNTED = {channel: metrics.MESSAGES.labels(channel.value) for channel in Channel}

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
    Channel.STATE: (set_online,),
    Channel.HEALTH: (heard, keep_health, measure_clock),
}
