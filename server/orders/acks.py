"""Acks: a unit's answer to an order (or its arrival, seen in its fixes) moves the order,
its unit's status and its incident. How an order and an incident move:
`server/rules/lifecycle.py`; the time an answer counts at: `server/rules/alarms.py`."""

from __future__ import annotations

from typing import Any

from server.orders import arrival_watch, dispatching, incidents, presence, queries, views
from server.orders.context import OrderBook, OrderRefused
from server.rules.alarms import pressed_at
from server.rules.lifecycle import (
    FINAL_ORDER_STATES,
    LifecycleError,
    incident_after_order,
    next_order_state,
)
from server.rules.refusals import refusal
from server.runtime import metrics
from server.store import Incident, by_id, db, record_event, save


def on_ack(
    book: OrderBook,
    unit_id: str,
    order_id: str,
    status: str,
    actor: str,
    reason: str = "",
    at: float | None = None,
    device_ts: float | None = None,
    received_at: float | None = None,
) -> dict[str, Any]:
    """Apply an ack from a unit's agent or terminal (or its arrival, `at`); repeats change
    nothing. An ack that came from a device (`received_at`) counts at the time it was
    pressed (`device_ts`) where that is plausible."""
    order = queries.get_order(order_id)
    if order.unit_id != unit_id:
        raise OrderRefused(refusal("order_of_another_unit", order=order_id))
    try:
        new_state = next_order_state(order.state, status)
    except LifecycleError as exc:
        raise OrderRefused(exc.refusal) from None
    if new_state is None:
        metrics.DUPLICATES.labels("ack").inc()
        return views.order_public(order)
    when = None
    if at is None and received_at is not None:
        stamps = [getattr(order, f"{step}_at") for step in views.ORDER_TIMESTAMPS]
        when = pressed_at(device_ts, received_at, max(t for t in stamps if t is not None))
        if when.distrust:
            metrics.DEVICE_TIME_DISTRUSTED.labels("ack").inc()
    now = at if at is not None else when.ts if when is not None else book.clock()
    with db.atomic():
        order.state = new_state
        setattr(order, f"{new_state}_at", now)
        if new_state == "declined":
            order.decline_reason = reason
        save(order)
        record_event(
            actor,
            f"order_{new_state}",
            incident_id=order.incident_id,
            unit_id=unit_id,
            order_id=order.id,
            reason=reason or None,
            crew=dispatching.crew_of(book, unit_id) or None,
            **(when.public() if when is not None else {}),
        )
        presence.refresh_unit(book, unit_id, now)
        incident = by_id(Incident, order.incident_id)
        changed = _advance_incident(incident, new_state, now)
    if new_state in ("on_scene", *FINAL_ORDER_STATES):
        arrival_watch.forget(book, order)
    book.notices.console("order", views.order_public(order))
    # most acks leave the incident as it was: its post still hears how its call goes
    incidents.changed(book, incident, to_consoles=changed)
    if new_state == "declined":
        dispatching.replace_unit(book, order, incident, "dispatch")
    return views.order_public(order)


def _advance_incident(incident: Incident, order_state: str, now: float) -> bool:
    """The incident's step after one of its orders moved; whether it changed."""
    states = queries.order_states_of(incident) if order_state in FINAL_ORDER_STATES else []
    state, on_scene_at, resolved_at = incident_after_order(
        incident.state, incident.on_scene_at, order_state, states, now
    )
    if (state, on_scene_at) == (incident.state, incident.on_scene_at):
        return False
    incident.state, incident.on_scene_at = state, on_scene_at
    incident.resolved_at = resolved_at or incident.resolved_at
    save(incident)
    return True
