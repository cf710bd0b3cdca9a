"""Incidents as dispatchers make and move them: create, change, note, resolve, hand over,
close, the follow-up call; and what every change tells the consoles and the caller's unit."""

from __future__ import annotations

import json
from typing import Any

from server.orders import alerts, arrival_watch, dispatching, queries, views
from server.orders.context import OrderBook, OrderRefused
from server.rules.alarms import Place
from server.rules.lifecycle import ACTIVE_INCIDENT_STATES, LifecycleError, next_incident_state
from server.rules.refusals import refusal
from server.store import Alarm, Alert, Incident, Order, Setting, db, new_id, record_event, save


def step(incident: Incident, event: str) -> str:
    """The state `event` moves the incident to, or the refusal that says why not."""
    try:
        return next_incident_state(incident.state, event)
    except LifecycleError as exc:
        raise OrderRefused(exc.refusal) from None


def _known_category(book: OrderBook, category: str) -> None:
    if category not in book.categories:
        raise OrderRefused(
            refusal("unknown_category", category=category, categories=", ".join(book.categories)),
            422,
        )


def create(book: OrderBook, data: dict[str, Any], actor: str) -> Incident:
    """A dispatcher's new incident; its plan is sent at once if asked to."""
    _known_category(book, data["category"])
    location = data.get("location") or {}
    lat, lon = location.get("lat"), location.get("lon")
    caller = data.get("caller") or {}
    with db.atomic():
        incident = Incident.create(
            id=new_id(),
            category=data["category"],
            priority=data["priority"],
            lat=lat,
            lon=lon,
            address=location.get("address", ""),
            grid=book.grid_at(lat, lon),
            summary=data.get("summary", ""),
            caller_name=caller.get("name"),
            caller_phone=caller.get("phone"),
            duty_level=book.duty_level,
            created_at=book.clock(),
        )
        record_event(actor, "incident_created", incident_id=incident.id)
    changed(book, incident)
    if data.get("apply_plan"):
        dispatching.apply_plan(book, incident, actor, guard_panic=False)
        incident = queries.get_incident(incident.id)  # as the plan left it
    return incident


def update(book: OrderBook, incident_id: str, changes: dict[str, Any], actor: str) -> Incident:
    """Category, priority, place, summary or caller changed: the units get an update."""
    incident = queries.get_incident(incident_id)
    step(incident, "update")
    if "category" in changes:
        _known_category(book, changes["category"])
    location = changes.pop("location", None)
    caller = changes.pop("caller", None)
    if changes.get("summary", incident.summary) != incident.summary:
        incident.summary_code = incident.summary_params = None  # the dispatcher's words now
    for name in ("category", "priority", "summary"):
        if name in changes:
            setattr(incident, name, changes[name])
    if location:
        place(book, incident, Place(location["lat"], location["lon"], "dispatcher"))
        incident.address = location.get("address", incident.address)
    if caller:
        incident.caller_name = caller.get("name", incident.caller_name)
        incident.caller_phone = caller.get("phone", incident.caller_phone)
    with db.atomic():
        save(incident)
        record_event(
            actor,
            "incident_updated",
            incident_id=incident.id,
            changes=changes,
            location=location or None,
        )
    tell_units(book, incident)
    if location:  # an incident that had no place may now get the units it waits for
        watch_scene(book, incident)
        dispatching.send_wanted(book, incident, actor, "placed on the map")
    return incident


def watch_scene(book: OrderBook, incident: Incident) -> None:
    """The scene moved (placed again, or merged into another call): its units are watched
    arriving there, the dwell counted afresh."""
    for order in queries.open_orders_of(incident):
        arrival_watch.watch(book, order, incident)


def place(book: OrderBook, incident: Incident, where: Place) -> None:
    """Where the incident's units go now, and where that came from."""
    incident.lat, incident.lon = where.lat, where.lon
    incident.location_source, incident.location_age_s = where.source, where.age_s
    incident.grid = book.grid_at(where.lat, where.lon)


def add_note(book: OrderBook, incident_id: str, text: str, actor: str) -> Incident:
    incident = queries.get_incident(incident_id)
    step(incident, "update")
    record_event(actor, "note", incident_id=incident.id, text=text)
    tell_units(book, incident)
    return incident


def tell_units(book: OrderBook, incident: Incident) -> None:
    """The units on the incident get an order of kind `update`."""
    now = book.clock()
    for order in queries.open_orders_of(incident):
        dispatching.send_to_unit(book, order, incident, "update", now)
    changed(book, incident)


def resolve(book: OrderBook, incident_id: str, note: str, actor: str) -> Incident:
    incident = queries.get_incident(incident_id)
    now = book.clock()
    with db.atomic():
        incident.state = step(incident, "resolve")
        incident.resolved_at = now
        save(incident)
        record_event(actor, "resolved", incident_id=incident.id, note=note or None)
    changed(book, incident)
    return incident


def hand_over(book: OrderBook, incident_id: str, handover: dict[str, Any], actor: str) -> Incident:
    """To a department or another unit, with a reason: handle first, hand over later. A
    receiving unit gets an order (no deadline: it is not an emergency dispatch) and accepts
    it on its own screen; its acceptance is the handover's, in the timeline."""
    incident = queries.get_incident(incident_id)
    if handover.get("to_unit") and not queries.unit_exists(handover["to_unit"]):
        raise OrderRefused(refusal("no_unit", unit=handover["to_unit"]), 422)
    now = book.clock()
    with db.atomic():
        incident.state = step(incident, "hand_over")
        incident.handed_over_at = now
        incident.handover = json.dumps(handover)
        save(incident)
        record_event(actor, "handed_over", incident_id=incident.id, handover=handover)
    tell_units(book, incident)
    if handover.get("to_unit"):
        dispatching.send_order(
            book, incident, handover["to_unit"], actor, (), deadline=False,
            event="handover_sent", handover=handover["kind"],
        )  # fmt: skip
    return incident


def close(book: OrderBook, incident_id: str, disposition: str, actor: str) -> Incident:
    """Closing takes back every order still open."""
    incident = queries.get_incident(incident_id)
    now = book.clock()
    state = step(incident, "close")
    for order in queries.open_orders_of(incident):
        dispatching.end_order(
            book, order, "cancelled", refusal("incident_closed"), actor, replace=False
        )
    with db.atomic():
        incident.state, incident.closed_at = state, now
        incident.disposition = disposition
        save(incident)
        record_event(actor, "closed", incident_id=incident.id, disposition=disposition)
    alerts.settle_incident(book, incident.id, actor)
    changed(book, incident)
    return incident


def merge(book: OrderBook, incident_id: str, into_id: str, actor: str) -> Incident:
    """Two calls raised for the same event become one: the duplicate's orders, alarms and
    alerts go to the one kept, its timeline is read with it, and it closes as merged."""
    if incident_id == into_id:
        raise OrderRefused(refusal("merge_into_itself"), 422)
    duplicate, kept = queries.get_incident(incident_id), queries.get_incident(into_id)
    for incident in (duplicate, kept):
        if incident.state == "closed":
            raise OrderRefused(refusal("merge_closed", incident=incident.id))
    now = book.clock()
    with db.atomic():
        moved = Order.update(incident=kept.id).where(Order.incident == duplicate.id).execute()
        Alarm.update(incident=kept.id).where(Alarm.incident == duplicate.id).execute()
        Alert.update(incident_id=kept.id).where(Alert.incident_id == duplicate.id).execute()
        _take_over(kept, duplicate)
        save(kept)
        duplicate.state, duplicate.closed_at, duplicate.wanted = "closed", now, None
        duplicate.merged_into, duplicate.disposition = kept.id, f"merged into {kept.id}"
        save(duplicate)
        record_event(actor, "merged", incident_id=duplicate.id, into=kept.id, orders=moved)
        record_event(actor, "merged_in", incident_id=kept.id, merged=duplicate.id, orders=moved)
    changed(book, duplicate)
    tell_units(book, kept)  # the moved orders' units now see the call they are on
    watch_scene(book, kept)
    if duplicate.reported_by and duplicate.reported_by != kept.reported_by:
        book.notices.reporter(duplicate.reported_by, {"ts": now, **views.call_status(book, kept)})
    return kept


def _take_over(kept: Incident, duplicate: Incident) -> None:
    """What the kept call learns from its duplicate: the earlier times, the presses, the
    furthest step either has got to (both still being handled)."""
    for name in ("dispatched_at", "on_scene_at"):
        times = [t for t in (getattr(kept, name), getattr(duplicate, name)) if t is not None]
        setattr(kept, name, min(times) if times else None)
    if duplicate.presses:
        kept.presses = (kept.presses or 0) + duplicate.presses
    kept.reported_by = kept.reported_by or duplicate.reported_by
    kept.first_unit = kept.first_unit or duplicate.first_unit
    if kept.state in ACTIVE_INCIDENT_STATES and duplicate.state in ACTIVE_INCIDENT_STATES:
        kept.state = max(kept.state, duplicate.state, key=ACTIVE_INCIDENT_STATES.index)


def record_followup(
    book: OrderBook, incident_id: str, followup: dict[str, Any], actor: str
) -> Incident:
    """The same-day call back to the caller; allowed in any state, the last one counts."""
    incident = queries.get_incident(incident_id)
    incident.followup_at = followup.pop("at", None) or book.clock()
    incident.followup = json.dumps(followup)
    with db.atomic():
        save(incident)
        record_event(actor, "followup", incident_id=incident.id, **followup)
    changed(book, incident)
    return incident


def set_duty_level(book: OrderBook, level: str, actor: str) -> str:
    """The commander's duty level: new incidents take its plans and ack timeouts."""
    now = book.clock()
    with db.atomic():
        row = {"value": level, "changed_at": now, "changed_by": actor}
        # an upsert both SQLite and PostgreSQL know (REPLACE is SQLite's alone)
        Setting.insert(key="duty_level", **row).on_conflict(
            conflict_target=[Setting.key], update=row
        ).execute()
        record_event(actor, "duty_level", level=level, previous=book.duty_level)
    book.duty_level = level
    book.notices.console("duty", {"level": level, "changed_at": now, "changed_by": actor})
    return level


def changed(book: OrderBook, incident: Incident, to_consoles: bool = True) -> None:
    """Consoles see every change; the unit that raised the alarm sees its call's."""
    if to_consoles:
        book.notices.console("incident", views.incident_public(incident))
    if incident.reported_by:
        book.notices.reporter(
            incident.reported_by, {"ts": book.clock(), **views.call_status(book, incident)}
        )


def alert(book: OrderBook, incident: Incident, kind: str, message: str, **refs: Any) -> None:
    """What a dispatcher must see about an incident: in its timeline, on every console's list
    of alerts until one acknowledges it."""
    alerts.raise_alert(book, kind, incident.id, message, **refs)
    changed(book, incident)
