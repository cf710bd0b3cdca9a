"""How the order book's rows look to the outside: an order as the wire carries it, orders,
incidents and alarms as the API and consoles show them, a call as its kiosk follows it,
the cold-spot map."""

from __future__ import annotations

import json
from typing import Any

from geodesy import distance_m
from server.orders import queries
from server.orders.context import OrderBook, OrderRefused
from server.rules.coverage import Cell, cells, coverage
from server.rules.dispatch import RESPONDING_KINDS
from server.rules.refusals import refusal
from server.store import Alarm, Incident, Order

ORDER_TIMESTAMPS = (
    "sent",
    "delivered",
    "accepted",
    "declined",
    "en_route",
    "on_scene",
    "cleared",
    "cancelled",
    "timed_out",
)
INCIDENT_TIMESTAMPS = ("created", "dispatched", "on_scene", "resolved", "handed_over", "closed")
SUMMARY_MAX = 2000  # the wire protocol's limit
MAX_COVERAGE_CELLS = 40_000  # one cold-spot map; more would hold up the worker


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 1)


def order_message(
    order: Order, incident: Incident, kind: str = "dispatch", ts: float | None = None
) -> dict[str, Any]:
    """An order as the wire protocol carries it to the unit (terminals also get its state).

    An update or a cancel carries a newer `ts` than the order, so the agent tells it from a
    re-send; the dispatcher's notes travel in the summary, newest last.
    """
    notes = queries.notes_of(incident)
    summary = "\n".join([incident.summary, *(f"• {n}" for n in notes)]).strip()
    return {
        "order_id": order.id,
        "state": order.state,
        "incident_id": incident.id,
        "unit_id": order.unit_id,
        "ts": order.sent_at if ts is None else ts,
        "kind": kind,
        "priority": incident.priority,
        "category": incident.category,
        "summary": summary[:SUMMARY_MAX],
        "location": {"lat": incident.lat, "lon": incident.lon, "address": incident.address},
        **said_summary(incident),
    }


def said_summary(incident: Incident) -> dict[str, Any]:
    """The code and parameters of a summary the server wrote, for screens to word."""
    if not incident.summary_code:
        return {}
    return {"summary_code": incident.summary_code, "summary_params": _json(incident.summary_params)}


def order_public(order: Order) -> dict[str, Any]:
    """An order as the API and the console show it, with the time of every step."""
    return {
        "order_id": order.id,
        "incident_id": order.incident_id,
        "unit_id": order.unit_id,
        "kind": order.kind,
        "state": order.state,
        "decline_reason": order.decline_reason,
        "end_reason": order.end_reason,
        "ack_deadline": order.ack_deadline,
        "arrival_s": _span(order.sent_at, order.on_scene_at),
        "call_out": order.kinds == "",  # no kind may replace it: see dispatching.call_out
        "crew": _json(order.crew) or [],  # who was on the unit when it was sent
        **{f"{step}_at": getattr(order, f"{step}_at") for step in ORDER_TIMESTAMPS},
    }


def incident_public(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "category": incident.category,
        "priority": incident.priority,
        "state": incident.state,
        "location": {"lat": incident.lat, "lon": incident.lon, "address": incident.address},
        "grid": incident.grid,
        "summary": incident.summary,
        **said_summary(incident),
        "caller": {"name": incident.caller_name, "phone": incident.caller_phone},
        "reported_by": incident.reported_by,
        "duty_level": incident.duty_level,
        "first_unit": incident.first_unit,
        "handover": _json(incident.handover),
        "disposition": incident.disposition,
        "followup": _json(incident.followup),
        "wanted": _json(incident.wanted),
        "location_source": incident.location_source,
        "location_age_s": incident.location_age_s,
        "presses": incident.presses,
        # arrival time: the first unit on scene, from the first dispatch
        "arrival_s": _span(incident.dispatched_at, incident.on_scene_at),
        **{f"{step}_at": getattr(incident, f"{step}_at") for step in INCIDENT_TIMESTAMPS},
        "followup_at": incident.followup_at,
        "merged_into": incident.merged_into,
    }


def alarm_public(alarm: Alarm, incident: Incident | None) -> dict[str, Any]:
    """An alarm as consoles ring for it, until a dispatcher acknowledges it."""
    return {
        "id": alarm.id,
        "alarm_id": alarm.alarm_id,
        "unit_id": alarm.unit_id,
        "kind": alarm.kind,
        "ts": alarm.ts,
        "received_at": alarm.received_at,
        "incident_id": incident.id if incident else None,
        "presses": incident.presses if incident else None,
        "location_source": incident.location_source if incident else None,
        "lat": alarm.lat,
        "lon": alarm.lon,
        "acknowledged_at": alarm.acknowledged_at,
        "acknowledged_by": alarm.acknowledged_by,
        "escalated_at": alarm.escalated_at,
    }


def way(book: OrderBook, order: Order, incident: Incident) -> dict[str, Any]:
    """How far the unit is from the scene now, and its estimated arrival (for its screen)."""
    unit = book.live.get(order.unit_id)
    if unit is None or unit.fix is None or incident.lat is None or incident.lon is None:
        return {"distance_m": None, "eta_s": None}
    away = distance_m(unit.fix["lat"], unit.fix["lon"], incident.lat, incident.lon)
    return {"distance_m": round(away), "eta_s": round(book.rules.eta.eta_s(away, unit.kind))}


def call_status(book: OrderBook, incident: Incident) -> dict[str, Any]:
    """A call for help as its kiosk shows it: the step it is at, and each unit coming,
    with a live ETA from where the unit is now (the recommendation's ETA model)."""
    coming = []
    for order in queries.orders_of_call(incident):
        unit = book.live.get(order.unit_id)
        eta_s = way(book, order, incident)["eta_s"]
        name = unit.name if unit is not None else order.unit_id
        coming.append(
            {"unit_id": order.unit_id, "name": name, "state": order.state, "eta_s": eta_s}
        )
    return {
        "incident_id": incident.id,
        "state": incident.state,
        "presses": incident.presses,
        "created_at": incident.created_at,
        "dispatched_at": incident.dispatched_at,
        "on_scene_at": incident.on_scene_at,
        "units": coming,
    }


def open_call(book: OrderBook, unit_id: str) -> dict[str, Any] | None:
    """The post's latest call for help still being handled, for a kiosk that reconnects."""
    incident = queries.latest_open_call(unit_id)
    return None if incident is None else call_status(book, incident)


def timeline(incident_id: str) -> list[dict[str, Any]]:
    return queries.timeline(queries.get_incident(incident_id))


def unacknowledged_alarms() -> list[dict[str, Any]]:
    """Alarms still ringing: a console that connects (or reloads) rings for them too."""
    rows = queries.alarms_with_incidents(Alarm.acknowledged_at.is_null())
    return [alarm_public(a, a.incident) for a in rows]


def coverage_map(book: OrderBook, cell_m: float) -> list[Cell]:
    """The cold-spot map over the grids, or over the units where there are no grids."""
    bbox = book.grids.bbox() or book.live.bbox()
    if bbox is None:
        return []
    count = sum(1 for _ in cells(bbox, cell_m))
    if count > MAX_COVERAGE_CELLS:
        raise OrderRefused(
            refusal("too_many_cells", count=count, cell_m=round(cell_m), most=MAX_COVERAGE_CELLS),
            422,
        )
    return coverage(
        bbox,
        cell_m,
        lambda lat, lon: book.live.nearby(lat, lon, RESPONDING_KINDS),
        book.clock(),
        book.rules,
        book.coverage_reach_s,
    )
