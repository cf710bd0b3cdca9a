"""The ingest worker: every message from the broker and every command from a screen runs here.

One worker owns the live state and the order book, so their changes are serial and need no
locks. A unit's message goes through the steps its channel lists in `steps.STEPS`, in
order; each step is guarded on its own, so one that fails is counted and logged and the
next still runs, and the message is acknowledged to the broker once, at the
end of its chain (positions: by the store writer, once stored). Nothing a message holds can
stop the worker: whatever goes wrong with one message is caught at that message.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.ingest import owntracks, steps
from server.ingest.receipts import Receipts
from server.ingest.sessions import BrokerConnected, Inbound, Inbox, MqttIngest
from server.ingest.store_writer import StoreWriter
from server.orders import OrderBook, OrderRefused, presence
from server.runtime import metrics
from server.runtime.log_limit import LimitedLog
from server.runtime.supervise import Stage
from server.state.live_state import LiveState, UnitState
from server.store import IN_FLEET, Unit, db
from wire import Channel, Topics, WireError, decode, parse_json
from wire.topics import TopicError

log = logging.getLogger(__name__)
# a unit sending garbage thousands of times must not fill the disk with the same line
limited = LimitedLog(log)

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
        book: OrderBook,
        writer: StoreWriter,
        receipts: Receipts | None = None,
    ):
        self.topics = topics
        self.inbox = inbox
        self.ingest = ingest
        self.live = live
        self.book = book
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
                self._guarded("resend_orders", presence.resend_all_to_agents, self.book)
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
            for step in steps.STEPS[delivery.channel]:
                if not self._guarded(step.__name__, step, self, delivery):
                    delivery.failed.append(step.__name__)
        if delivery is None or not delivery.acked_when_stored:
            self.ingest.ack(message)  # handled, or rejected for good: never redelivered

    def _accept(self, message: Inbound) -> Delivery:
        if message.topic.startswith(owntracks.PREFIX):
            return self._accept_owntracks(message)
        try:
            unit_id, channel = self.topics.parse(message.topic)
        except TopicError as exc:
            raise Rejected("topic", str(exc)) from None
        if channel not in steps.STEPS:
            raise Rejected("topic", f"units do not publish on their {channel.value} topic")
        return self._delivery(unit_id, channel, message.payload, message)

    def _accept_owntracks(self, message: Inbound) -> Delivery:
        """A phone's OwnTracks message, read into the wire message it stands for."""
        try:
            unit_id, device = owntracks.unit_of_topic(message.topic)
            read = owntracks.read(parse_json(message.payload))
        except (owntracks.OwnTracksError, WireError) as exc:
            raise Rejected("invalid", f"OwnTracks: {exc}") from None
        if read.channel is None:
            raise Rejected("ignored", f"OwnTracks {read.why}: nothing for the server")
        delivery = self._delivery(unit_id, read.channel, json.dumps(read.message), message)
        delivery.unit.owntracks_device = device  # its orders' regions go to this device
        return delivery

    def _delivery(
        self, unit_id: str, channel: Channel, payload: bytes | str, message: Inbound
    ) -> Delivery:
        unit = self.known_unit(unit_id)
        if unit is None:
            raise Rejected("unknown_unit", f"no unit {unit_id!r} is provisioned")
        try:
            body = decode(channel, payload)
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
        row = Unit.get_or_none((Unit.id == unit_id) & IN_FLEET)
        if row is None:
            self._unknown[unit_id] = now
            return None
        self._unknown.pop(unit_id, None)
        unit = UnitState.from_row(row)
        self.live.add(unit)
        return unit


# each channel's message counter, looked up once (labels() per message was ~3 % of ingest)
COUNTED = {channel: metrics.MESSAGES.labels(channel.value) for channel in Channel}
