"""Dispatching: a plan's units sent (now by the straight line, or after OSRM's drive
times), what it could not fill kept as wanted, a dispatcher's own choice, orders sent,
ended and replaced. Which units and why: `server/rules/dispatch.py`, `server/rules/plans.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from server.ingest import owntracks
from server.orders import arrival_watch, incidents, presence, queries, views
from server.orders.context import OrderBook, OrderRefused, Shortlist
from server.rules.dispatch import (
    ON_FOOT,
    RESPONDING_KINDS,
    DriveLeg,
    Recommendation,
    Scene,
    dispatch_refusal,
    fill_slot,
    kinds_for_call,
    kinds_to_replace,
    not_police_refusal,
    recommend,
    with_drive_times,
    within_reach,
)
from server.rules.lifecycle import (
    ACTIVE_INCIDENT_STATES,
    CLOSED_INCIDENT_STATES,
    FINAL_ORDER_STATES,
    next_incident_state,
)
from server.rules.plans import Plan, Slot
from server.rules.refusals import Refusal, refusal
from server.state.live_state import UnitState
from server.store import Incident, Order, db, insert, new_id, record_event, save


def plan_of(book: OrderBook, incident: Incident, guard_panic: bool = False) -> Plan:
    duty = incident.duty_level or book.duty_level
    return book.plans.plan_for(duty, incident.category, incident.priority, guard_panic)


def apply_plan(book: OrderBook, incident: Incident, actor: str, guard_panic: bool) -> None:
    plan = plan_of(book, incident, guard_panic)
    record_event(actor, "plan", incident_id=incident.id, plan=plan.match)
    fill(book, incident, list(plan.slots), actor, reason=f"plan {plan.match}")


def send_plan(book: OrderBook, incident_id: str, _body: dict[str, Any], actor: str) -> Incident:
    """The plan's units for an incident entered without them (once the call is taken)."""
    incident = queries.get_incident(incident_id)
    if incident.state not in ACTIVE_INCIDENT_STATES:
        raise OrderRefused(refusal("no_plan_now", state=incident.state))
    apply_plan(book, incident, actor, guard_panic=False)
    return queries.get_incident(incident_id)


def fill(book: OrderBook, incident: Incident, slots: list[Slot], actor: str, reason: str) -> None:
    """Send units for `slots`: now by straight line, or after OSRM's drive times."""
    if incident.lat is None or incident.lon is None:
        # kept as wanted: placing the incident on the map (or its unit's next fix) sends them
        want(incident, [*slots, *wanted_of(incident)])
        if incident.reported_by:
            book.unplaced_calls.add(incident.reported_by)
        incidents.alert(
            book, incident, "no_location", "no location known: place the incident on the map"
        )
        return
    lists = shortlists(book, incident, slots, book.shortlist)
    if book.route_later is not None and any(s.recommendations for s in lists):
        book.route_later(book, incident, lists, actor, reason)
    else:
        finish_fill(book, incident.id, slots, {}, actor, reason)


def finish_fill(
    book: OrderBook,
    incident_id: str,
    slots: list[Slot],
    legs: dict[str, DriveLeg | None],
    actor: str,
    reason: str,
    retry: bool = False,
) -> list[Order]:
    """Choose per slot with the drive times known by now (units may have moved meanwhile).

    What cannot be filled is kept as the incident's `wanted` units and sent by the timer
    as soon as units are available: an alarm during a broker restart, when every unit
    looks offline, still gets its units once they are back.
    """
    incident = queries.get_incident(incident_id)
    if incident.state in CLOSED_INCIDENT_STATES:
        return []
    sent: list[Order] = []
    still_wanted: list[Slot] = []
    for shortlist in shortlists(book, incident, slots, book.shortlist):
        ranked = with_drive_times(shortlist.recommendations, legs)
        picks, missing = fill_slot(shortlist.slot.count, ranked)
        sent += [
            send_order(
                book,
                incident,
                pick.unit_id,
                actor,
                kinds=shortlist.slot.kinds,
                why=f"{reason}: {pick.reason}",
                eta_s=round(pick.eta_s),
            )
            for pick in picks
        ]
        if missing:
            still_wanted.append(Slot(shortlist.slot.kinds, missing))
            if not retry:
                _no_unit_alert(book, incident, shortlist.slot, missing, ranked)
    want(incident, still_wanted + (wanted_of(incident) if not retry else []))
    return sent


def _no_unit_alert(
    book: OrderBook, incident: Incident, slot: Slot, missing: int, ranked: list[Recommendation]
) -> None:
    kinds = "/".join(sorted(slot.kinds))
    passed = [f"{r.unit_id}: {r.reason}" for r in ranked if not r.recommendable]
    why = f" (nearest passed over: {'; '.join(passed[:3])})" if passed else ""
    incidents.alert(
        book,
        incident,
        "no_unit",
        f"{missing} more {kinds} needed: none available{why}; sent when one is",
        missing=missing,
        kinds=kinds,
    )


def wanted_of(incident: Incident) -> list[Slot]:
    return [Slot(frozenset(s["kinds"]), s["count"]) for s in json.loads(incident.wanted or "[]")]


def want(incident: Incident, slots: list[Slot]) -> None:
    value = (
        json.dumps([{"kinds": sorted(s.kinds), "count": s.count} for s in slots]) if slots else None
    )
    if value != incident.wanted:
        incident.wanted = value
        Incident.update(wanted=value).where(Incident.id == incident.id).execute()


def fill_wanted(book: OrderBook) -> None:
    """Incidents still lacking units get them as soon as any are available."""
    for incident in queries.incidents_wanting_units():
        finish_fill(book, incident.id, wanted_of(incident), {}, "dispatch", "wanted", retry=True)


def send_wanted(book: OrderBook, incident: Incident, actor: str, reason: str) -> None:
    """What an incident still waits for, now that it has a place."""
    wanted = wanted_of(incident)
    if wanted and incident.lat is not None and incident.state in ACTIVE_INCIDENT_STATES:
        want(incident, [])
        fill(book, incident, wanted, actor, reason=reason)


def shortlists(
    book: OrderBook, incident: Incident, slots: list[Slot], size: int
) -> list[Shortlist]:
    """Each slot's best units, none counted twice, none already sent to the incident."""
    taken = queries.units_sent_to(incident)
    if incident.reported_by:
        taken.add(incident.reported_by)
    out = []
    for slot in slots:
        recs = recommendations(book, incident, slot.kinds, frozenset(taken), max(size, slot.count))
        out.append(Shortlist(slot, recs))
        taken.update(r.unit_id for r in recs if r.recommendable)
    return out


def recommendations(
    book: OrderBook,
    incident: Incident,
    kinds: frozenset[str] = RESPONDING_KINDS,
    exclude: frozenset[str] = frozenset(),
    limit: int = 10,
) -> list[Recommendation]:
    if incident.lat is None or incident.lon is None:
        raise OrderRefused(refusal("no_location_to_recommend"))
    scene = Scene(
        incident.lat,
        incident.lon,
        incident.grid,
        book.grids.neighbours(incident.grid) if incident.grid else frozenset(),
    )
    nearby = book.live.nearby(incident.lat, incident.lon, kinds)
    return recommend(scene, nearby, book.clock(), book.rules, kinds, exclude, limit)


def recommend_for(
    book: OrderBook, incident_id: str, limit: int
) -> tuple[Incident, list[Recommendation]]:
    """The dispatcher's list: units already sent to the incident are left out."""
    incident = queries.get_incident(incident_id)
    sent = {o.unit_id for o in queries.open_orders_of(incident)}
    if incident.reported_by:
        sent.add(incident.reported_by)
    kinds = kinds_for_call(plan_of(book, incident).kinds())
    return incident, recommendations(book, incident, kinds, frozenset(sent), limit)


def crew_of(book: OrderBook, unit_id: str) -> list[dict[str, str]]:
    """Who is on the unit now ([] for a unit no crew signed on to)."""
    unit = book.live.get(unit_id)
    return unit.crew if unit is not None else []


def unit_of(book: OrderBook, unit_id: str) -> UnitState:
    unit = book.live.get(unit_id)
    if unit is None:
        raise OrderRefused(refusal("no_unit", unit=unit_id), 422)
    return unit


def dispatch_units(
    book: OrderBook, incident_id: str, unit_ids: list[str], actor: str, divert: bool = False
) -> list[Order]:
    """A dispatcher sends units; one busy elsewhere goes only with `divert`."""
    incident = queries.get_incident(incident_id)
    units = [unit_of(book, u) for u in dict.fromkeys(unit_ids)]
    refuse_dispatch(book, incident, units, divert)
    want(incident, [])  # the dispatcher chose: the plan's remaining wants are off
    orders = []
    for unit in units:
        # asked again: replacing one diverted unit's order may have sent the next one
        for order, _ in queries.open_orders(unit.unit_id) if divert else ():
            diverted = refusal("diverted", incident=incident.id)
            end_order(book, order, "cancelled", diverted, actor, True)
        kinds = kinds_to_replace(unit.kind)
        orders.append(send_order(book, incident, unit.unit_id, actor, kinds=kinds))
    return orders


def refuse_dispatch(
    book: OrderBook, incident: Incident, units: list[UnitState], divert: bool
) -> None:
    """Raise the first reason one of `units` may not be sent to `incident` now."""
    incidents.step(incident, "order_sent")
    holding = {o.unit_id for o in queries.open_orders_of(incident)}
    plan_kinds = plan_of(book, incident).kinds()
    for unit in units:
        busy = [i for _, i in queries.open_order_states_of_unit(unit.unit_id)]
        why = dispatch_refusal(
            unit.unit_id, unit.status, unit.unit_id in holding, busy[0] if busy else None, divert
        ) or not_police_refusal(unit.unit_id, unit.kind, plan_kinds)
        if why:
            raise OrderRefused(why)


def call_out(
    book: OrderBook, incident_id: str, radius_m: float, actor: str
) -> tuple[list[Order], int]:
    """One task to every available person on foot within `radius_m` of the scene whom the
    call's plan names ("help search for a missing child near X"): each accepts or declines
    on their own screen, and no one is sent in their place (there is no deadline to miss).
    The orders made, and how many hold the call-out's task now (those sent before too)."""
    incident = queries.get_incident(incident_id)
    kinds = plan_of(book, incident).kinds() & ON_FOOT
    if not kinds:
        raise OrderRefused(
            refusal("call_out_needs_people_on_foot", category=incident.category), 422
        )
    if incident.lat is None or incident.lon is None:
        raise OrderRefused(refusal("no_location_to_call_out"))
    incidents.step(incident, "order_sent")
    scene = Scene(incident.lat, incident.lon, incident.grid, frozenset())
    nearby = book.live.nearby(incident.lat, incident.lon, kinds)
    reached = within_reach(scene, nearby, book.clock(), book.rules, kinds, radius_m)
    # `within_reach` takes available units only: one holding any order is not
    orders = [
        send_order(book, incident, u, actor, kinds=(), deadline=False, call_out_m=radius_m)
        for u in reached
    ]
    tasks = [o for o in queries.open_orders_of(incident) if o.kinds == ""]
    return orders, len(tasks)


def send_order(
    book: OrderBook,
    incident: Incident,
    unit_id: str,
    actor: str,
    kinds: Iterable[str],
    deadline: bool = True,
    event: str = "order_sent",
    **why: Any,
) -> Order:
    """An order to `unit_id`; with `deadline`, one not accepted in time goes to the next
    unit of `kinds` (timers.py). A handover's order (`event` handover_sent) is no dispatch:
    it leaves the incident's first unit and dispatch time alone."""
    now = book.clock()
    duty = incident.duty_level or book.duty_level
    crew = crew_of(book, unit_id)
    with db.atomic():
        order = Order(
            id=new_id(),
            incident=incident,
            unit=unit_id,
            sent_at=now,
            ack_deadline=now + book.plans.ack_timeout_s(duty, incident.priority)
            if deadline
            else None,
            kinds=",".join(sorted(kinds)),
            crew=json.dumps(crew) if crew else None,
        )
        insert(order)
        incident.state = next_incident_state(incident.state, event)
        if event == "order_sent":
            incident.dispatched_at = incident.dispatched_at or now
            incident.first_unit = incident.first_unit or unit_id
        save(incident)
        record_event(
            actor,
            "order_sent",
            incident_id=incident.id,
            unit_id=unit_id,
            order_id=order.id,
            crew=crew or None,
            **why,
        )
        presence.refresh_unit(book, unit_id, now)
    arrival_watch.watch(book, order, incident)
    send_to_unit(book, order, incident, "dispatch", now)
    book.notices.console("order", views.order_public(order))
    incidents.changed(book, incident)
    return order


def send_to_unit(book: OrderBook, order: Order, incident: Incident, kind: str, ts: float) -> None:
    """An order (dispatch, update, cancel) to the unit's screens and its agent."""
    message = views.order_message(order, incident, kind, ts)
    book.notices.order_to_terminals(order.unit_id, {**message, **views.way(book, order, incident)})
    book.notices.order_to_agent(order.unit_id, message)
    unit = book.live.get(order.unit_id)
    if kind == "dispatch" and unit is not None and unit.owntracks_device:
        # a phone on OwnTracks hears of the scene as a region; entering it is the arrival
        scene = {"order_id": order.id, "location": message["location"]}
        command = owntracks.waypoints_command([scene], ts)
        book.notices.phone_command(order.unit_id, unit.owntracks_device, command)


def cancel_order(book: OrderBook, order_id: str, reason: str, actor: str, replace: bool) -> Order:
    order = queries.get_order(order_id)
    if order.state in FINAL_ORDER_STATES:
        raise OrderRefused(refusal("order_ended", order=order_id, state=order.state))
    return end_order(book, order, "cancelled", reason, actor, replace)


def reassign_order(
    book: OrderBook, order_id: str, unit_id: str, reason: str, actor: str, divert: bool = False
) -> Order:
    """Take the order from its unit and give the incident to another one."""
    order = queries.get_order(order_id)
    if order.state in FINAL_ORDER_STATES:
        raise OrderRefused(refusal("order_ended", order=order_id, state=order.state))
    if unit_id == order.unit_id:
        raise OrderRefused(refusal("order_with_unit", order=order_id, unit=unit_id))
    # refused before the order is taken back: a refusal leaves it with its unit
    refuse_dispatch(book, order.incident, [unit_of(book, unit_id)], divert)
    end_order(book, order, "cancelled", reason or refusal("reassigned", unit=unit_id), actor, False)
    return dispatch_units(book, order.incident_id, [unit_id], actor, divert)[0]


def end_order(
    book: OrderBook, order: Order, state: str, reason: str | Refusal, actor: str, replace: bool
) -> Order:
    """Cancel or time out an order: its unit is told; with `replace` the next unit goes. A
    reason the server gives (a Refusal) goes in the timeline with its code, to be worded."""
    now = book.clock()
    incident = order.incident
    coded = (
        {"reason_code": reason.code, "reason_params": reason.params}
        if isinstance(reason, Refusal)
        else {}
    )
    with db.atomic():
        order.state, order.end_reason = state, str(reason)
        setattr(order, f"{state}_at", now)
        save(order)
        record_event(
            actor,
            f"order_{state}",
            incident_id=incident.id,
            unit_id=order.unit_id,
            order_id=order.id,
            reason=str(reason),
            **coded,
        )
        presence.refresh_unit(book, order.unit_id, now)
    arrival_watch.forget(book, order)
    send_to_unit(book, order, incident, "cancel", now)
    book.notices.console("order", views.order_public(order))
    if replace:
        replace_unit(book, order, incident, actor)
    return order


def replace_unit(book: OrderBook, order: Order, incident: Incident, actor: str) -> None:
    """The next-best unit of the same kinds goes in place of one that will not."""
    if incident.state in CLOSED_INCIDENT_STATES or order.kinds == "":
        return  # closed; or a call-out's task, which each person answers for themselves
    kinds = frozenset((order.kinds or ",".join(RESPONDING_KINDS)).split(","))
    why = order.end_reason or order.decline_reason or order.state.replace("_", " ")
    incidents.alert(
        book,
        incident,
        "escalation",
        f"unit {order.unit_id} {order.state.replace('_', ' ')} ({why}): sending the next unit",
        order_id=order.id,
        unit_id=order.unit_id,
        state=order.state,
    )
    fill(book, incident, [Slot(kinds, 1)], actor, reason=f"replaces {order.unit_id}")
