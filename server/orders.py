"""The order book: alarms become incidents, incidents get orders, acks move orders along.

Runs only in the ingest worker. Decisions come from `server.dispatch` (pure functions); this
module does the I/O around them: the store, the live state and the notifier.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from server import metrics
from server.dispatch import (
    RESPONDING_KINDS,
    AckRejected,
    next_order_state,
    rank_units,
    unit_status,
)
from server.live_state import LiveState
from server.notify import Notifier
from server.store import (
    OPEN_ORDER_STATES,
    Alarm,
    Incident,
    Order,
    Unit,
    db,
    new_id,
    record_event,
)

log = logging.getLogger(__name__)

PANIC_CATEGORY = "urgent"
PANIC_PRIORITY = 1


class OrderRefused(Exception):
    """An ack or command that cannot apply; the text is the answer to whoever sent it."""


def order_message(order: Order, incident: Incident) -> dict[str, Any]:
    """An order as the wire protocol carries it to the unit (terminals also get its state)."""
    return {
        "order_id": order.id,
        "state": order.state,
        "incident_id": incident.id,
        "unit_id": order.unit_id,
        "ts": order.sent_at,
        "kind": order.kind,
        "priority": incident.priority,
        "category": incident.category,
        "summary": incident.summary,
        "location": {"lat": incident.lat, "lon": incident.lon, "address": incident.address},
    }


def order_public(order: Order) -> dict[str, Any]:
    """An order as the API and the console show it, with the time of every step."""
    return {
        "order_id": order.id,
        "incident_id": order.incident_id,
        "unit_id": order.unit_id,
        "kind": order.kind,
        "state": order.state,
        "decline_reason": order.decline_reason,
        **{f"{step}_at": getattr(order, f"{step}_at") for step in ORDER_TIMESTAMPS},
    }


ORDER_TIMESTAMPS = ("sent", "delivered", "accepted", "declined", "en_route", "on_scene", "cleared")


def incident_public(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "category": incident.category,
        "priority": incident.priority,
        "state": incident.state,
        "location": {"lat": incident.lat, "lon": incident.lon, "address": incident.address},
        "summary": incident.summary,
        "reported_by": incident.reported_by,
        "created_at": incident.created_at,
        "dispatched_at": incident.dispatched_at,
        "on_scene_at": incident.on_scene_at,
        "resolved_at": incident.resolved_at,
        "closed_at": incident.closed_at,
    }


class OrderService:
    def __init__(self, live: LiveState, notifier: Notifier, clock: Callable[[], float] = time.time):
        self.live = live
        self.notifier = notifier
        self.clock = clock

    # -- alarms --------------------------------------------------------------------------
    def on_alarm(self, unit_id: str, alarm: dict[str, Any], received_at: float) -> Incident | None:
        """A panic makes an incident and an order to the nearest unit; a redelivery nothing."""
        if Alarm.get_or_none(Alarm.alarm_id == alarm["alarm_id"]) is not None:
            metrics.DUPLICATES.labels("alarm").inc()
            return None
        unit = self.live.get(unit_id)
        fix = alarm.get("fix") or (unit.fix if unit else None)
        lat, lon = (fix["lat"], fix["lon"]) if fix else (None, None)
        drill = alarm["kind"] == "test"
        with db.atomic():
            incident = None
            if not drill:
                incident = Incident.create(
                    id=new_id(),
                    category=PANIC_CATEGORY,
                    priority=PANIC_PRIORITY,
                    lat=lat,
                    lon=lon,
                    summary=f"Panic button at {unit.name if unit else unit_id}",
                    reported_by=unit_id,
                    created_at=received_at,
                )
            Alarm.create(
                alarm_id=alarm["alarm_id"],
                unit=unit_id,
                kind=alarm["kind"],
                ts=alarm["ts"],
                lat=lat,
                lon=lon,
                received_at=received_at,
                incident=incident,
            )
            record_event(
                f"unit:{unit_id}",
                "drill" if drill else "alarm",
                unit_id=unit_id,
                incident_id=incident.id if incident else None,
                alarm_id=alarm["alarm_id"],
            )
        self.notifier.console(
            "alarm",
            {
                "alarm_id": alarm["alarm_id"],
                "unit_id": unit_id,
                "kind": alarm["kind"],
                "incident_id": incident.id if incident else None,
                "lat": lat,
                "lon": lon,
            },
        )
        if incident is not None:
            self.dispatch_nearest(incident, exclude={unit_id})
            metrics.ALARM_TO_ORDER.observe(self.clock() - received_at)
        return incident

    # -- dispatch ------------------------------------------------------------------------
    def dispatch_nearest(self, incident: Incident, exclude: set[str]) -> Order | None:
        """Send the nearest free unit; units already sent to this incident are passed over."""
        if incident.lat is None or incident.lon is None:
            record_event("dispatch", "no_location", incident_id=incident.id)
            self.notifier.console("incident", incident_public(incident))
            return None
        already = {o.unit_id for o in Order.select(Order.unit).where(Order.incident == incident)}
        ranked = rank_units(
            incident.lat,
            incident.lon,
            self.live.candidates(RESPONDING_KINDS),
            frozenset(exclude | already),
        )
        if not ranked:
            log.warning("incident %s: no unit available", incident.id)
            record_event("dispatch", "no_unit_available", incident_id=incident.id)
            self.notifier.console("incident", incident_public(incident))
            return None
        return self.send_order(
            incident, ranked[0].unit_id, actor="dispatch", distance_m=round(ranked[0].distance_m)
        )

    def send_order(self, incident: Incident, unit_id: str, actor: str, **why: Any) -> Order:
        now = self.clock()
        with db.atomic():
            order = Order.create(id=new_id(), incident=incident, unit=unit_id, sent_at=now)
            if incident.state == "new":
                incident.state, incident.dispatched_at = "dispatched", now
                incident.save()
            record_event(
                actor,
                "order_sent",
                incident_id=incident.id,
                unit_id=unit_id,
                order_id=order.id,
                **why,
            )
            self._update_unit_status(unit_id, now)
        message = order_message(order, incident)
        self.notifier.order_to_terminals(unit_id, message)
        self.notifier.order_to_agent(unit_id, message)
        self.notifier.console("order", order_public(order))
        self.notifier.console("incident", incident_public(incident))
        return order

    # -- acks ----------------------------------------------------------------------------
    def on_ack(
        self, unit_id: str, order_id: str, status: str, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        """Apply an ack from a unit's agent or terminal; repeats change nothing."""
        order = Order.get_or_none(Order.id == order_id)
        if order is None:
            raise OrderRefused(f"no order {order_id!r}")
        if order.unit_id != unit_id:
            raise OrderRefused(f"order {order_id} belongs to another unit")
        try:
            new_state = next_order_state(order.state, status)
        except AckRejected as exc:
            raise OrderRefused(str(exc)) from None
        if new_state is None:
            metrics.DUPLICATES.labels("ack").inc()
            return order_public(order)
        now = self.clock()
        with db.atomic():
            order.state = new_state
            setattr(order, f"{new_state}_at", now)
            if new_state == "declined":
                order.decline_reason = reason
            order.save()
            record_event(
                actor,
                f"order_{new_state}",
                incident_id=order.incident_id,
                unit_id=unit_id,
                order_id=order.id,
                reason=reason or None,
            )
            self._update_unit_status(unit_id, now)
            incident = self._advance_incident(order.incident, new_state, now)
        self.notifier.console("order", order_public(order))
        self.notifier.console("incident", incident_public(incident))
        if new_state == "declined":
            self.dispatch_nearest(incident, exclude={incident.reported_by or ""})
        return order_public(order)

    def _advance_incident(self, incident: Incident, order_state: str, now: float) -> Incident:
        if order_state == "on_scene" and incident.on_scene_at is None:
            incident.state, incident.on_scene_at = "on_scene", now
        elif order_state == "cleared":
            states = {o.state for o in incident.orders}
            if states <= {"cleared", "declined"}:
                incident.state, incident.resolved_at = "resolved", now
        incident.save()
        return incident

    def _update_unit_status(self, unit_id: str, now: float) -> None:
        states = [
            o.state
            for o in Order.select(Order.state).where(
                (Order.unit == unit_id) & (Order.state.in_(OPEN_ORDER_STATES))
            )
        ]
        status = unit_status(states)
        if self.live.get(unit_id) and self.live.set_status(unit_id, status, now):
            Unit.update(status=status, status_since=now).where(Unit.id == unit_id).execute()

    # -- (re)delivery --------------------------------------------------------------------
    def open_orders(self, unit_id: str | None = None) -> list[tuple[Order, Incident]]:
        query = (
            Order.select(Order, Incident)
            .join(Incident)
            .where(Order.state.in_(OPEN_ORDER_STATES))
            .order_by(Order.sent_at)
        )
        if unit_id is not None:
            query = query.where(Order.unit == unit_id)
        return [(o, o.incident) for o in query]

    def resend_to_terminal(self, unit_id: str, sid: str) -> int:
        """A terminal (re)connected: it gets every order its unit still holds."""
        pending = self.open_orders(unit_id)
        for order, incident in pending:
            self.notifier.order_to_terminals(unit_id, order_message(order, incident), sid=sid)
        return len(pending)

    def resend_all_to_agents(self) -> None:
        """The broker session (re)connected: orders no agent has confirmed go out again."""
        for order, incident in self.open_orders():
            if order.state == "sent":
                self.notifier.order_to_agent(order.unit_id, order_message(order, incident))

    def on_unit_online(self, unit_id: str, online: bool, ts: float) -> None:
        """The agent's state message: sent on every (re)connect, so open orders go again."""
        if self.live.set_online(unit_id, online):
            Unit.update(online=online, online_since=ts).where(Unit.id == unit_id).execute()
            record_event(f"agent:{unit_id}", "online" if online else "offline", unit_id=unit_id)
        if online:
            for order, incident in self.open_orders(unit_id):
                self.notifier.order_to_agent(unit_id, order_message(order, incident))
