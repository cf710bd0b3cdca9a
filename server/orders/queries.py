"""What the order book reads from the store (and the one status write every order makes).

The statements run for every order and every ack are built once (`Prepared`): building a
peewee query cost ~30x what the database takes to run it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from peewee import JOIN

from server.orders.context import OrderRefused
from server.rules.lifecycle import (
    ACTIVE_INCIDENT_STATES,
    AWAITING_ACCEPT,
    FINAL_ORDER_STATES,
    OPEN_ORDER_STATES,
)
from server.rules.refusals import refusal
from server.store import Alarm, Alert, Event, Incident, Order, Prepared, Unit, by_id

_OPEN_STATES_OF_UNIT = Prepared(
    lambda unit_id, *states: Order.select(Order.state, Order.incident).where(
        (Order.unit == unit_id) & Order.state.in_(states)
    )
)
_OPEN_ORDERS_OF_INCIDENT = Prepared(
    lambda incident_id, *states: (
        Order.select()
        .where((Order.incident == incident_id) & Order.state.in_(states))
        .order_by(Order.sent_at)
    )
)
_ORDER_STATES_OF_INCIDENT = Prepared(
    lambda incident_id: Order.select(Order.state).where(Order.incident == incident_id)
)
_NOTES = Prepared(
    lambda incident_id, kind: (
        Event.select(Event.data)
        .where((Event.incident_id == incident_id) & (Event.kind == kind))
        .order_by(Event.ts, Event.id)
    )
)
_SET_UNIT_STATUS = Prepared(
    lambda status, since, unit_id: Unit.update(status=status, status_since=since).where(
        Unit.id == unit_id
    )
)
# run for every alarm: is it a redelivery, and has its unit a call still open
_ALARM_OF_UNIT = Prepared(
    lambda unit_id, alarm_id: Alarm.select().where(
        (Alarm.unit == unit_id) & (Alarm.alarm_id == alarm_id)
    )
)
_OPEN_CALL_OF_UNIT = Prepared(
    lambda unit_id, *states: (
        Incident.select()
        .where(
            (Incident.reported_by == unit_id)
            & Incident.state.in_(states)
            & Incident.presses.is_null(False)
        )
        .order_by(Incident.created_at.desc())
    )
)


def get_incident(incident_id: str) -> Incident:
    incident = by_id(Incident, incident_id)
    if incident is None:
        raise OrderRefused(refusal("no_incident", incident=incident_id), 404)
    return incident


def get_order(order_id: str) -> Order:
    order = by_id(Order, order_id)
    if order is None:
        raise OrderRefused(refusal("no_order", order=order_id), 404)
    return order


def open_orders_of(incident: Incident) -> list[Order]:
    return _OPEN_ORDERS_OF_INCIDENT.models(Order, incident.id, *OPEN_ORDER_STATES)


def open_orders(unit_id: str | None = None) -> list[tuple[Order, Incident]]:
    """Orders not yet ended (a unit's, or every unit's), oldest first, with their incidents."""
    query = (
        Order.select(Order, Incident)
        .join(Incident)
        .where(Order.state.in_(OPEN_ORDER_STATES))
        .order_by(Order.sent_at)
    )
    if unit_id is not None:
        query = query.where(Order.unit == unit_id)
    return [(o, o.incident) for o in query]


def open_order_states_of_unit(unit_id: str) -> list[tuple[str, str]]:
    """(state, incident id) of each order the unit holds."""
    return _OPEN_STATES_OF_UNIT.rows(unit_id, *OPEN_ORDER_STATES)


def order_states_of(incident: Incident) -> list[str]:
    return [state for (state,) in _ORDER_STATES_OF_INCIDENT.rows(incident.id)]


def units_sent_to(incident: Incident) -> set[str]:
    """Every unit that ever had an order for the incident (ended ones too)."""
    return {o.unit_id for o in Order.select(Order.unit).where(Order.incident == incident)}


def notes_of(incident: Incident) -> list[str]:
    return [json.loads(data)["text"] for (data,) in _NOTES.rows(incident.id, "note")]


def set_unit_status(unit_id: str, status: str, since: float) -> None:
    _SET_UNIT_STATUS.run(status, since, unit_id)


def unit_exists(unit_id: str) -> bool:
    return Unit.get_or_none(Unit.id == unit_id) is not None


def alarm_of_unit(unit_id: str, alarm_id: str) -> Alarm | None:
    return _ALARM_OF_UNIT.first(Alarm, unit_id, alarm_id)


def open_alarm_call(unit_id: str) -> Incident | None:
    """The unit's call for help still being handled, which a press of its button joins."""
    return _OPEN_CALL_OF_UNIT.first(Incident, unit_id, *ACTIVE_INCIDENT_STATES)


def latest_open_call(unit_id: str) -> Incident | None:
    """The unit's latest incident still being handled that it reported (a kiosk shows it)."""
    return (
        Incident.select()
        .where((Incident.reported_by == unit_id) & Incident.state.in_(ACTIVE_INCIDENT_STATES))
        .order_by(Incident.created_at.desc())
        .first()
    )


def units_with_unplaced_calls() -> set[str]:
    rows = Incident.select(Incident.reported_by).where(
        Incident.lat.is_null()
        & Incident.reported_by.is_null(False)
        & Incident.state.in_(ACTIVE_INCIDENT_STATES)
    )
    return cast(set[str], {row.reported_by for row in rows})  # none null: see the query


def orders_of_call(incident: Incident) -> list[Order]:
    """The orders a call's unit is told about: all but those that ended unanswered."""
    return list(
        Order.select().where(
            (Order.incident == incident)
            & Order.state.not_in(tuple(FINAL_ORDER_STATES - {"cleared"}))
        )
    )


def orders_past_deadline(now: float) -> list[Order]:
    return list(
        Order.select().where(Order.state.in_(tuple(AWAITING_ACCEPT)) & (Order.ack_deadline <= now))
    )


def orders_on_scene_since(since: float, unless_alerted: str) -> list[tuple[Order, Incident]]:
    """Orders on scene since `since` or before, with their incidents, but those that have had
    an alert of kind `unless_alerted` (one query, however many are on scene)."""
    alerted = Alert.select(Alert.order_id).where(
        (Alert.kind == unless_alerted) & Alert.order_id.is_null(False)
    )
    rows = (
        Order.select(Order, Incident)
        .join(Incident)
        .where(
            (Order.state == "on_scene") & (Order.on_scene_at <= since) & Order.id.not_in(alerted)
        )
    )
    return [(o, o.incident) for o in rows]


def incidents_wanting_units() -> list[Incident]:
    """Incidents still lacking units they can be sent to (they have a place)."""
    # read them all first: on SQLite a read still open when the orders are written cannot
    # become a write once the store writer has committed ("database is locked")
    return list(
        Incident.select().where(
            Incident.wanted.is_null(False)
            & Incident.state.in_(ACTIVE_INCIDENT_STATES)
            & Incident.lat.is_null(False)
        )
    )


def alarms_with_incidents(*where: Any) -> list[Alarm]:
    """Alarms (with their incident, if any) matching `where`, oldest first."""
    query = Alarm.select(Alarm, Incident).join(Incident, JOIN.LEFT_OUTER)
    for condition in where:
        query = query.where(condition)
    return list(query.order_by(Alarm.received_at))


def alarm_ids_exist(ids: list[int]) -> bool:
    return Alarm.select().where(Alarm.id.in_(ids)).exists()


def merged_ids(incident_id: str) -> list[str]:
    """The incident and every call merged into it, and into those, and so on."""
    ids, frontier = [incident_id], [incident_id]
    while frontier:
        frontier = [
            i.id for i in Incident.select(Incident.id).where(Incident.merged_into.in_(frontier))
        ]
        ids += frontier
    return ids


def timeline(incident: Incident) -> list[dict[str, Any]]:
    """Its events, with those of the calls merged into it, oldest first."""
    events = (
        Event.select()
        .where(Event.incident_id.in_(merged_ids(incident.id)))
        .order_by(Event.ts, Event.id)
    )
    return [
        {
            "ts": e.ts,
            "actor": e.actor,
            "kind": e.kind,
            "unit_id": e.unit_id,
            "order_id": e.order_id,
            "data": json.loads(e.data),
        }
        for e in events
    ]


@dataclass(frozen=True)
class IncidentSearch:
    """What a dispatcher looks for in the history: every field is one more condition."""

    since: float | None = None
    until: float | None = None
    state: str | None = None  # or "open": not closed
    grid: str | None = None
    category: str | None = None
    unit: str | None = None  # sent to it
    text: str | None = None  # in the summary, address, disposition, id or a note
    limit: int = 200


def find_incidents(search: IncidentSearch) -> list[Incident]:
    """Incidents created in the period matching every condition, newest first."""
    rows = Incident.select().order_by(Incident.created_at.desc())
    if search.since is not None:
        rows = rows.where(Incident.created_at >= search.since)
    if search.until is not None:
        rows = rows.where(Incident.created_at < search.until)
    if search.state == "open":
        rows = rows.where(Incident.state != "closed")
    elif search.state:
        rows = rows.where(Incident.state == search.state)
    for column, value in ((Incident.grid, search.grid), (Incident.category, search.category)):
        if value:
            rows = rows.where(column == value)
    if search.unit:
        rows = rows.where(
            Incident.id.in_(Order.select(Order.incident).where(Order.unit == search.unit))
        )
    if search.text:
        text = search.text
        # notes are stored as JSON, where anything not ASCII is escaped
        noted = Event.select(Event.incident_id).where(
            (Event.kind == "note") & Event.data.contains(json.dumps(text)[1:-1])
        )
        rows = rows.where(
            Incident.summary.contains(text)
            | Incident.address.contains(text)
            | Incident.disposition.contains(text)
            | (Incident.id == text)
            | Incident.id.in_(noted)
        )
    return list(rows.limit(search.limit))
