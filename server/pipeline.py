"""The ingest worker: every message from the broker and every command from a screen runs here.

One worker owns the live state and the order book, so their changes are serial and need no
locks. The order of the processing steps is the table `STEPS` below; a step that fails is
logged and counted, and the worker moves on to the next message.
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
from server.orders import OrderRefused, OrderService
from server.store import Unit, db
from server.store_writer import StoreWriter
from wire import Channel, Topics, WireError, decode
from wire.topics import TopicError

log = logging.getLogger(__name__)

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


class Pipeline:
    def __init__(
        self,
        topics: Topics,
        inbox: Inbox,
        ingest: MqttIngest,
        live: LiveState,
        orders: OrderService,
        writer: StoreWriter,
    ):
        self.topics = topics
        self.inbox = inbox
        self.ingest = ingest
        self.live = live
        self.orders = orders
        self.writer = writer
        self.running = False
        self._unknown: dict[str, float] = {}
        # The processing steps, one per channel, in the order a unit's data flows.
        self.steps: dict[Channel, Callable[[UnitState, Any, Inbound], None]] = {
            Channel.POSITION: self.on_positions,
            Channel.ALARM: self.on_alarm,
            Channel.ACK: self.on_ack,
            Channel.STATE: self.on_state,
            Channel.HEALTH: self.on_health,
        }

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
        if isinstance(item, Inbound):
            self.on_inbound(item)
        elif isinstance(item, Call):
            self._run_call(item)
        elif isinstance(item, BrokerConnected):
            self._guarded("resend_orders", self.orders.resend_all_to_agents)

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

    def _guarded(self, step: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run one step; a failure is logged and counted and never stops the worker."""
        try:
            fn(*args)
        except Exception:
            metrics.STEP_FAILURES.labels(step).inc()
            log.exception("step %s failed", step)

    # -- one message from the broker -----------------------------------------------------
    def on_inbound(self, message: Inbound) -> None:
        channel = "?"
        try:
            unit, channel, body = self._accept(message)
        except Rejected as rejected:
            metrics.REJECTED.labels("mqtt", rejected.reason).inc()
            log.warning("rejected %s: %s", message.topic[:200], rejected)
            self.ingest.ack(message)
            return
        metrics.MESSAGES.labels(channel.value).inc()
        if channel is not Channel.STATE:  # a state message says itself whether it is online
            self._guarded("heard", self.orders.heard, unit.unit_id, message.received_at)
        self._guarded(channel.value, self.steps[channel], unit, body, message)

    def _accept(self, message: Inbound) -> tuple[UnitState, Channel, Any]:
        try:
            unit_id, channel = self.topics.parse(message.topic)
        except TopicError as exc:
            raise Rejected("topic", str(exc)) from None
        if channel is Channel.ORDERS:
            raise Rejected("topic", "units do not publish on their orders topic")
        unit = self.known_unit(unit_id)
        if unit is None:
            raise Rejected("unknown_unit", f"no unit {unit_id!r} is provisioned")
        try:
            body = decode(channel, message.payload)
        except WireError as exc:
            raise Rejected("invalid", str(exc)) from None
        return unit, channel, body

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

    # -- the steps -----------------------------------------------------------------------
    def on_positions(self, unit: UnitState, fixes: list[dict], message: Inbound) -> None:
        horizon = message.received_at + FUTURE_TOLERANCE_S
        good = [f for f in fixes if f["ts"] <= horizon]
        if len(good) < len(fixes):
            metrics.REJECTED.labels("mqtt", "future").inc(len(fixes) - len(good))
            log.warning("unit %s sent %d future-dated fixes", unit.unit_id, len(fixes) - len(good))
        if good:
            self.live.apply_fixes(unit.unit_id, good)
            if unit.targets:
                self._guarded("arrival", self.orders.on_fixes, unit, good)
        rows = [
            {"unit_id": unit.unit_id, "received_at": message.received_at, **fix} for fix in good
        ]
        self.writer.put(rows, (lambda: self.ingest.ack(message)) if message.qos else None)

    def on_alarm(self, unit: UnitState, alarm: dict, message: Inbound) -> None:
        try:
            self.orders.on_alarm(unit.unit_id, alarm, message.received_at)
        finally:
            self.ingest.ack(message)

    def on_ack(self, unit: UnitState, ack: dict, message: Inbound) -> None:
        try:
            self.orders.on_ack(
                unit.unit_id,
                ack["order_id"],
                ack["status"],
                actor=f"agent:{unit.unit_id}",
                reason=ack.get("reason", ""),
            )
        except OrderRefused as exc:
            metrics.REJECTED.labels("mqtt", "ack").inc()
            log.warning("ack from %s rejected: %s", unit.unit_id, exc)
        finally:
            self.ingest.ack(message)

    def on_state(self, unit: UnitState, state: dict, message: Inbound) -> None:
        try:
            self.orders.on_unit_online(unit.unit_id, state["online"], state["ts"])
        finally:
            self.ingest.ack(message)

    def on_health(self, unit: UnitState, health: dict, message: Inbound) -> None:
        unit.health = health
