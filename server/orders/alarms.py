"""Alarms: a press makes an incident (or joins its unit's open call) and sends its plan;
consoles ring until a dispatcher acknowledges it; nobody's acknowledgement in time calls
the commanders. Where the units go and the time a press counts at: `server/rules/alarms.py`.
"""

from __future__ import annotations

import json
from typing import Any

from server.orders import alerts, dispatching, incidents, queries, views
from server.orders.context import OrderBook, OrderRefused
from server.rules.alarms import Place, alarm_ack_overdue, alarm_place, panic_incident, pressed_at
from server.rules.refusals import refusal
from server.runtime import metrics
from server.state.live_state import UnitState
from server.store import Alarm, Incident, by_id, db, new_id, record_event, save


def on_alarm(
    book: OrderBook,
    unit_id: str,
    alarm: dict[str, Any],
    received_at: float,
    dropped: list[str] | None = None,
) -> Incident | None:
    """A panic makes an incident and sends its plan, or joins its unit's call still open;
    a redelivery does nothing. Returns the incident (None for a drill)."""
    already = queries.alarm_of_unit(unit_id, alarm["alarm_id"])
    if already is not None:
        metrics.DUPLICATES.labels("alarm").inc()
        return None if already.incident_id is None else by_id(Incident, already.incident_id)
    unit = book.live.get(unit_id)
    when = pressed_at(alarm.get("ts"), received_at, not_before=unit.provisioned_at if unit else 0)
    if when.distrust:
        metrics.DEVICE_TIME_DISTRUSTED.labels("alarm").inc()
    place = _place_of(book, unit, alarm.get("fix"), when.ts)
    drill = alarm["kind"] == "test"
    open_call = None if drill else queries.open_alarm_call(unit_id)
    placed_now = open_call is not None and open_call.lat is None and place.known
    with db.atomic():
        incident = None
        if open_call is not None:
            incident = _join(book, open_call, place)
        elif not drill:
            incident = _new_call(book, unit_id, unit, place, when.ts)
        row = Alarm.create(
            alarm_id=alarm["alarm_id"],
            unit=unit_id,
            kind=alarm["kind"],
            ts=when.ts,
            device_ts=when.device_ts,
            lat=place.lat,
            lon=place.lon,
            received_at=received_at,
            incident=incident,
            dropped=json.dumps(dropped) if dropped else None,
        )
        record_event(
            f"unit:{unit_id}",
            "drill" if drill else "alarm_repeated" if open_call else "alarm",
            unit_id=unit_id,
            incident_id=incident.id if incident else None,
            alarm_id=alarm["alarm_id"],
            presses=incident.presses if incident else None,
            location_source=place.source,
            location_age_s=place.age_s,
            dropped=dropped or None,
            **when.public(),
        )
    book.notices.console("alarm", views.alarm_public(row, incident))
    if incident is None:
        return None
    if open_call is not None:
        metrics.ALARM_PRESSES_JOINED.inc()
        incidents.changed(book, incident)
        if placed_now:
            dispatching.send_wanted(book, incident, "dispatch", "placed by a later press")
        return incident
    guard_panic = unit is not None and unit.kind == "guard_post"
    dispatching.apply_plan(book, incident, "dispatch", guard_panic=guard_panic)
    metrics.ALARM_TO_ORDER.observe(book.clock() - received_at)
    return queries.get_incident(incident.id)  # as the plan left it


def _place_of(book: OrderBook, unit: UnitState | None, fix: dict | None, at: float) -> Place:
    post = book.posts.get(unit.home_post) if unit and unit.home_post else None
    return alarm_place(fix, unit.fix if unit else None, post, at, book.rules.stale_s)


def _new_call(
    book: OrderBook, unit_id: str, unit: UnitState | None, place: Place, pressed: float
) -> Incident:
    call = panic_incident(book.categories, unit.name if unit else unit_id)
    return Incident.create(
        id=new_id(),
        category=call.category,
        priority=call.priority,
        lat=place.lat,
        lon=place.lon,
        location_source=place.source,
        location_age_s=place.age_s,
        grid=book.grid_at(place.lat, place.lon),
        summary=call.summary,
        summary_code=call.summary_code,
        summary_params=json.dumps(call.summary_params),
        reported_by=unit_id,
        duty_level=book.duty_level,
        created_at=pressed,
        presses=1,
    )


def _join(book: OrderBook, incident: Incident, place: Place) -> Incident:
    """Another press while the call is open: counted; it may place a call that had no
    location (its plan then goes out)."""
    incident.presses = (incident.presses or 1) + 1
    if incident.lat is None and place.known:
        incidents.place(book, incident, place)
    save(incident)
    return incident


def place_call_by_fix(book: OrderBook, unit_id: str, fix: dict[str, Any]) -> None:
    """A fix from a unit whose call for help had no place: the call goes there now, and its
    units are sent (the dispatcher may still move it)."""
    book.unplaced_calls.discard(unit_id)
    incident = queries.open_alarm_call(unit_id)
    if incident is None or incident.lat is not None:
        return
    incidents.place(book, incident, Place(fix["lat"], fix["lon"], "unit_fix", 0.0))
    with db.atomic():
        save(incident)
        record_event("dispatch", "placed", incident_id=incident.id, unit_id=unit_id, by="unit_fix")
    incidents.tell_units(book, incident)
    dispatching.send_wanted(book, incident, "dispatch", "placed by its unit's fix")


def acknowledge(book: OrderBook, ids: list[int], actor: str) -> list[dict[str, Any]]:
    """A dispatcher heard them: every console falls silent for them, the timeline says who."""
    now = book.clock()
    rows = queries.alarms_with_incidents(Alarm.id.in_(ids), Alarm.acknowledged_at.is_null())
    if not rows and ids and not queries.alarm_ids_exist(ids):
        raise OrderRefused(refusal("no_alarm", alarm=ids[0]), 404)
    with db.atomic():
        for row in rows:
            row.acknowledged_at, row.acknowledged_by = now, actor
            save(row)
            record_event(
                actor,
                "alarm_acknowledged",
                incident_id=row.incident_id,
                unit_id=row.unit_id,
                alarm_id=row.alarm_id,
                waited_s=round(now - row.received_at, 1),
            )
    done = [views.alarm_public(r, r.incident) for r in rows]
    if done:
        book.notices.console("alarms_acknowledged", {"alarms": done, "by": actor, "at": now})
    return done


def escalate_unheard(book: OrderBook, now: float) -> None:
    """An alarm nobody acknowledged in time goes to the commanders on duty, once."""
    due = queries.alarms_with_incidents(
        Alarm.acknowledged_at.is_null(),
        Alarm.escalated_at.is_null(),
        Alarm.received_at <= now - book.alarm_ack_s,
    )
    for row in due:
        if not alarm_ack_overdue(
            row.received_at, row.acknowledged_at, row.escalated_at, now, book.alarm_ack_s
        ):
            continue
        row.escalated_at = now
        save(row)
        waited = now - row.received_at
        alerts.raise_alert(
            book,
            "alarm_unacknowledged",
            row.incident_id,
            f"alarm from {row.unit_id} not acknowledged for {waited:.0f} s",
            event="alarm_escalated",
            # every console shows it; a commander's calls out
            pushed={"to": "commanders", "alarm": views.alarm_public(row, row.incident)},
            unit_id=row.unit_id,
            alarm_id=row.alarm_id,
            waited_s=round(waited),
        )
        metrics.ALARM_ESCALATIONS.inc()
