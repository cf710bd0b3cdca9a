"""The order book: incidents, their orders, acks, escalation and arrival.

Runs only in the ingest worker, so its changes are serial. Every decision comes from a pure
module (`server.lifecycle`, `server.dispatch`, `server.plans`, `server.arrival`); this module
does the I/O around them: the store, the live state and the notifier. Drive times from OSRM
are asked outside the worker (`Router` below) and come back as plain values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from peewee import JOIN

from server import clock, metrics
from server.alarms import Place, alarm_ack_overdue, alarm_place, pressed_at
from server.arrival import ArrivalRule, track_arrival
from server.coverage import Cell, cells, coverage
from server.dispatch import (
    RESPONDING_KINDS,
    DriveLeg,
    Recommendation,
    Rules,
    Scene,
    distance_m,
    recommend,
    with_drive_times,
)
from server.geo import GridMap, PostPoint
from server.lifecycle import (
    ACTIVE_INCIDENT_STATES,
    AWAITING_ACCEPT,
    FINAL_ORDER_STATES,
    OPEN_ORDER_STATES,
    LifecycleError,
    escalation_due,
    next_incident_state,
    next_order_state,
    silent_too_long,
    unit_status,
)
from server.live_state import LiveState, Target, UnitState
from server.notify import Notifier
from server.plans import ResponsePlans, Slot
from server.store import (
    Alarm,
    Event,
    Incident,
    Order,
    Prepared,
    Setting,
    Unit,
    by_id,
    db,
    insert,
    load_posts,
    new_id,
    record_event,
    save,
)

log = logging.getLogger(__name__)

PANIC_PRIORITY = 1
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

# run for every order sent and every ack
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


class OrderRefused(Exception):
    """A command that cannot apply; the text is the answer to whoever sent it.

    `status` is the HTTP status the REST API answers with (404: no such thing, 409: not now).
    """

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def notes_of(incident: Incident) -> list[str]:
    return [json.loads(data)["text"] for (data,) in _NOTES.rows(incident.id, "note")]


def order_message(
    order: Order, incident: Incident, kind: str = "dispatch", ts: float | None = None
) -> dict[str, Any]:
    """An order as the wire protocol carries it to the unit (terminals also get its state).

    An update or a cancel carries a newer `ts` than the order, so the agent tells it from a
    re-send; the dispatcher's notes travel in the summary, newest last.
    """
    summary = "\n".join([incident.summary, *(f"• {n}" for n in notes_of(incident))]).strip()
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
        "end_reason": order.end_reason,
        "ack_deadline": order.ack_deadline,
        "arrival_s": _span(order.sent_at, order.on_scene_at),
        **{f"{step}_at": getattr(order, f"{step}_at") for step in ORDER_TIMESTAMPS},
    }


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 1)


def incident_public(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "category": incident.category,
        "priority": incident.priority,
        "state": incident.state,
        "location": {"lat": incident.lat, "lon": incident.lon, "address": incident.address},
        "grid": incident.grid,
        "summary": incident.summary,
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


@dataclass(frozen=True)
class Shortlist:
    """Who a plan slot would send, best first, and the units drive times are wanted for."""

    slot: Slot
    recommendations: list[Recommendation]


class OrderService:
    def __init__(
        self,
        live: LiveState,
        notifier: Notifier,
        plans: ResponsePlans,
        rules: Rules,
        arrival: ArrivalRule,
        *,
        categories: tuple[str, ...],
        offline_after_s: float,
        shortlist: int = 25,
        coverage_reach_s: float = 900.0,
        alarm_ack_s: float = 30.0,
        clock: Callable[[], float] = clock.now,
    ):
        self.live = live
        self.notifier = notifier
        self.plans = plans
        self.rules = rules
        self.arrival = arrival
        self.categories = categories
        self.offline_after_s = offline_after_s
        self.shortlist = shortlist
        self.coverage_reach_s = coverage_reach_s
        self.alarm_ack_s = alarm_ack_s
        self.clock = clock
        self.grids = GridMap([])
        self.posts: dict[str, PostPoint] = {}  # where a unit at a post stands
        # units whose own call for help has no place yet: their next fix gives it one
        self.unplaced_calls: set[str] = set()
        self.duty_level = "normal"
        # Set by the runtime where OSRM is configured: asks drive times outside the worker
        # and calls `finish_fill` back in it.
        self.route_later: Callable[[Incident, list[Shortlist], str, str], None] | None = None

    def load(self, grids: GridMap) -> None:
        """Start-up: grids, posts, the duty level, and the scenes of orders not yet on scene."""
        self.use_grids(grids)
        self.use_posts(load_posts())
        row = Setting.get_or_none(Setting.key == "duty_level")
        self.duty_level = row.value if row else "normal"
        for order, incident in self.open_orders():
            self._watch(order, incident)
        unplaced = Incident.select(Incident.reported_by).where(
            Incident.lat.is_null()
            & Incident.reported_by.is_null(False)
            & Incident.state.in_(ACTIVE_INCIDENT_STATES)
        )
        self.unplaced_calls = {row.reported_by for row in unplaced}

    def use_grids(self, grids: GridMap) -> None:
        """New incidents get their grid from these; those made before keep theirs."""
        self.grids = grids

    def use_posts(self, posts: Iterable[PostPoint]) -> None:
        """The response posts' surveyed places: a post's alarm without a fix goes there."""
        self.posts = {post.post_id: post for post in posts}

    # -- incidents -----------------------------------------------------------------------
    def create_incident(self, data: dict[str, Any], actor: str) -> Incident:
        """A dispatcher's new incident; its plan is sent at once if asked to."""
        if data["category"] not in self.categories:
            raise OrderRefused(
                f"unknown category {data['category']!r}: use one of {', '.join(self.categories)}",
                422,
            )
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
                grid=self._grid_at(lat, lon),
                summary=data.get("summary", ""),
                caller_name=caller.get("name"),
                caller_phone=caller.get("phone"),
                duty_level=self.duty_level,
                created_at=self.clock(),
            )
            record_event(actor, "incident_created", incident_id=incident.id)
        self._incident_changed(incident)
        if data.get("apply_plan"):
            self.apply_plan(incident, actor, guard_panic=False)
            incident = self.get_incident(incident.id)  # as the plan left it
        return incident

    def _grid_at(self, lat: float | None, lon: float | None) -> str | None:
        return None if lat is None or lon is None else self.grids.grid_at(lat, lon)

    def get_incident(self, incident_id: str) -> Incident:
        incident = by_id(Incident, incident_id)
        if incident is None:
            raise OrderRefused(f"no incident {incident_id!r}", 404)
        return incident

    def update_incident(self, incident_id: str, changes: dict[str, Any], actor: str) -> Incident:
        """Category, priority, place, summary or caller changed: the units get an update."""
        incident = self.get_incident(incident_id)
        self._step(incident, "update")
        if "category" in changes and changes["category"] not in self.categories:
            raise OrderRefused(f"unknown category {changes['category']!r}", 422)
        location = changes.pop("location", None)
        caller = changes.pop("caller", None)
        for name in ("category", "priority", "summary"):
            if name in changes:
                setattr(incident, name, changes[name])
        if location:
            self._place(incident, Place(location["lat"], location["lon"], "dispatcher"))
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
        self._tell_units(incident)
        if location:  # an incident that had no place may now get the units it waits for
            self._send_wanted(incident, actor, "placed on the map")
        return incident

    def add_note(self, incident_id: str, text: str, actor: str) -> Incident:
        incident = self.get_incident(incident_id)
        self._step(incident, "update")
        record_event(actor, "note", incident_id=incident.id, text=text)
        self._tell_units(incident)
        return incident

    def _tell_units(self, incident: Incident) -> None:
        now = self.clock()
        for order in self._open_orders_of(incident):
            self._send(order, incident, "update", now)
        self._incident_changed(incident)

    def resolve(self, incident_id: str, note: str, actor: str) -> Incident:
        incident = self.get_incident(incident_id)
        now = self.clock()
        with db.atomic():
            incident.state = self._step(incident, "resolve")
            incident.resolved_at = now
            save(incident)
            record_event(actor, "resolved", incident_id=incident.id, note=note or None)
        self._incident_changed(incident)
        return incident

    def hand_over(self, incident_id: str, handover: dict[str, Any], actor: str) -> Incident:
        """To a department or another unit, with a reason: handle first, hand over later."""
        incident = self.get_incident(incident_id)
        if handover.get("to_unit") and Unit.get_or_none(Unit.id == handover["to_unit"]) is None:
            raise OrderRefused(f"no unit {handover['to_unit']!r}", 422)
        now = self.clock()
        with db.atomic():
            incident.state = self._step(incident, "hand_over")
            incident.handed_over_at = now
            incident.handover = json.dumps(handover)
            save(incident)
            record_event(actor, "handed_over", incident_id=incident.id, handover=handover)
        self._tell_units(incident)
        return incident

    def close(self, incident_id: str, disposition: str, actor: str) -> Incident:
        """Closing takes back every order still open."""
        incident = self.get_incident(incident_id)
        now = self.clock()
        state = self._step(incident, "close")
        for order in self._open_orders_of(incident):
            self._end_order(order, "cancelled", "incident closed", actor, replace=False)
        with db.atomic():
            incident.state, incident.closed_at = state, now
            incident.disposition = disposition
            save(incident)
            record_event(actor, "closed", incident_id=incident.id, disposition=disposition)
        self._incident_changed(incident)
        return incident

    def record_followup(self, incident_id: str, followup: dict[str, Any], actor: str) -> Incident:
        """The same-day call back to the caller; allowed in any state, the last one counts."""
        incident = self.get_incident(incident_id)
        incident.followup_at = followup.pop("at", None) or self.clock()
        incident.followup = json.dumps(followup)
        with db.atomic():
            save(incident)
            record_event(actor, "followup", incident_id=incident.id, **followup)
        self._incident_changed(incident)
        return incident

    def _step(self, incident: Incident, event: str) -> str:
        try:
            return next_incident_state(incident.state, event)
        except LifecycleError as exc:
            raise OrderRefused(str(exc)) from None

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        incident = self.get_incident(incident_id)
        events = Event.select().where(Event.incident_id == incident.id).order_by(Event.ts, Event.id)
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

    # -- alarms --------------------------------------------------------------------------
    def on_alarm(
        self,
        unit_id: str,
        alarm: dict[str, Any],
        received_at: float,
        dropped: list[str] | None = None,
    ) -> Incident | None:
        """A panic makes an incident and sends its plan, or joins its unit's call still open;
        a redelivery does nothing. Returns the incident (None for a drill)."""
        already = _ALARM_OF_UNIT.first(Alarm, unit_id, alarm["alarm_id"])
        if already is not None:
            metrics.DUPLICATES.labels("alarm").inc()
            return None if already.incident_id is None else by_id(Incident, already.incident_id)
        unit = self.live.get(unit_id)
        provisioned = unit.provisioned_at if unit else 0.0
        when = pressed_at(alarm.get("ts"), received_at, not_before=provisioned)
        if when.distrust:
            metrics.DEVICE_TIME_DISTRUSTED.labels("alarm").inc()
        place = self._alarm_place(unit, alarm.get("fix"), when.ts)
        drill = alarm["kind"] == "test"
        open_call = None if drill else self._open_alarm_call(unit_id)
        placed_now = open_call is not None and open_call.lat is None and place.known
        with db.atomic():
            incident = None
            if open_call is not None:
                incident = self._join_call(open_call, place)
            elif not drill:
                incident = self._incident_for_alarm(unit_id, unit, place, when.ts)
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
        self.notifier.console("alarm", alarm_public(row, incident))
        if incident is None:
            return None
        if open_call is not None:
            metrics.ALARM_PRESSES_JOINED.inc()
            self._incident_changed(incident)
            if placed_now:
                self._send_wanted(incident, "dispatch", "placed by a later press")
            return incident
        guard_panic = unit is not None and unit.kind == "guard_post"
        self.apply_plan(incident, "dispatch", guard_panic=guard_panic)
        metrics.ALARM_TO_ORDER.observe(self.clock() - received_at)
        return self.get_incident(incident.id)  # as the plan left it

    def _alarm_place(self, unit: UnitState | None, fix: dict | None, at: float) -> Place:
        post = self.posts.get(unit.home_post) if unit and unit.home_post else None
        return alarm_place(fix, unit.fix if unit else None, post, at, self.rules.stale_s)

    def _open_alarm_call(self, unit_id: str) -> Incident | None:
        """The unit's call for help still being handled, which a press of its button joins."""
        return _OPEN_CALL_OF_UNIT.first(Incident, unit_id, *ACTIVE_INCIDENT_STATES)

    def _incident_for_alarm(
        self, unit_id: str, unit: UnitState | None, place: Place, pressed: float
    ) -> Incident:
        return Incident.create(
            id=new_id(),
            category=self.categories[0],
            priority=PANIC_PRIORITY,
            lat=place.lat,
            lon=place.lon,
            location_source=place.source,
            location_age_s=place.age_s,
            grid=self._grid_at(place.lat, place.lon),
            summary=f"Panic button at {unit.name if unit else unit_id}",
            reported_by=unit_id,
            duty_level=self.duty_level,
            created_at=pressed,
            presses=1,
        )

    def _join_call(self, incident: Incident, place: Place) -> Incident:
        """Another press while the call is open: counted; it may place a call that had no
        location (its plan then goes out)."""
        incident.presses = (incident.presses or 1) + 1
        if incident.lat is None and place.known:
            self._place(incident, place)
        save(incident)
        return incident

    def place_call_by_fix(self, unit_id: str, fix: dict[str, Any]) -> None:
        """A fix from a unit whose call for help had no place: the call goes there now, and
        its units are sent (the dispatcher may still move it)."""
        self.unplaced_calls.discard(unit_id)
        incident = self._open_alarm_call(unit_id)
        if incident is None or incident.lat is not None:
            return
        self._place(incident, Place(fix["lat"], fix["lon"], "unit_fix", 0.0))
        with db.atomic():
            save(incident)
            record_event(
                "dispatch", "placed", incident_id=incident.id, unit_id=unit_id, by="unit_fix"
            )
        self._tell_units(incident)
        self._send_wanted(incident, "dispatch", "placed by its unit's fix")

    def _place(self, incident: Incident, place: Place) -> None:
        incident.lat, incident.lon = place.lat, place.lon
        incident.location_source, incident.location_age_s = place.source, place.age_s
        incident.grid = self._grid_at(place.lat, place.lon)

    # -- dispatchers acknowledge alarms ---------------------------------------------------
    def unacknowledged_alarms(self) -> list[dict[str, Any]]:
        """Alarms still ringing: a console that connects (or reloads) rings for them too."""
        rows = (
            Alarm.select(Alarm, Incident)
            .join(Incident, JOIN.LEFT_OUTER)
            .where(Alarm.acknowledged_at.is_null())
            .order_by(Alarm.received_at)
        )
        return [alarm_public(a, a.incident) for a in rows]

    def acknowledge_alarms(self, ids: list[int], actor: str) -> list[dict[str, Any]]:
        """A dispatcher heard them: every console falls silent for them, the timeline says who."""
        now = self.clock()
        rows = list(
            Alarm.select(Alarm, Incident)
            .join(Incident, JOIN.LEFT_OUTER)
            .where(Alarm.id.in_(ids) & Alarm.acknowledged_at.is_null())
        )
        if not rows and ids and not Alarm.select().where(Alarm.id.in_(ids)).exists():
            raise OrderRefused(f"no alarm {ids[0]}", 404)
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
        done = [alarm_public(r, r.incident) for r in rows]
        if done:
            self.notifier.console("alarms_acknowledged", {"alarms": done, "by": actor, "at": now})
        return done

    def _escalate_unheard_alarms(self, now: float) -> None:
        """An alarm nobody acknowledged in time goes to the commanders on duty, once."""
        due = (
            Alarm.select(Alarm, Incident)
            .join(Incident, JOIN.LEFT_OUTER)
            .where(
                Alarm.acknowledged_at.is_null()
                & Alarm.escalated_at.is_null()
                & (Alarm.received_at <= now - self.alarm_ack_s)
            )
        )
        for row in list(due):
            if not alarm_ack_overdue(
                row.received_at, row.acknowledged_at, row.escalated_at, now, self.alarm_ack_s
            ):
                continue
            row.escalated_at = now
            save(row)
            waited = now - row.received_at
            message = f"alarm from {row.unit_id} not acknowledged for {waited:.0f} s"
            record_event(
                "dispatch",
                "alarm_escalated",
                incident_id=row.incident_id,
                unit_id=row.unit_id,
                alarm_id=row.alarm_id,
                message=message,
            )
            metrics.ALARM_ESCALATIONS.inc()
            self.notifier.console(
                "alert",
                {
                    "kind": "alarm_unacknowledged",
                    "to": "commanders",  # every console shows it; a commander's calls out
                    "incident_id": row.incident_id,
                    "unit_id": row.unit_id,
                    "message": message,
                    "alarm": alarm_public(row, row.incident),
                },
            )

    # -- dispatch ------------------------------------------------------------------------
    def apply_plan(self, incident: Incident, actor: str, guard_panic: bool) -> None:
        plan = self.plans.plan_for(
            incident.duty_level or self.duty_level,
            incident.category,
            incident.priority,
            guard_panic,
        )
        record_event(actor, "plan", incident_id=incident.id, plan=plan.match)
        self.fill(incident, list(plan.slots), actor, reason=f"plan {plan.match}")

    def send_plan(self, incident_id: str, _body: dict[str, Any], actor: str) -> Incident:
        """The plan's units for an incident entered without them (once the call is taken)."""
        incident = self.get_incident(incident_id)
        if incident.state not in ACTIVE_INCIDENT_STATES:
            raise OrderRefused(f"the incident is {incident.state.replace('_', ' ')}: no plan now")
        self.apply_plan(incident, actor, guard_panic=False)
        return self.get_incident(incident_id)

    def fill(self, incident: Incident, slots: list[Slot], actor: str, reason: str) -> None:
        """Send units for `slots`: now by straight line, or after OSRM's drive times."""
        if incident.lat is None or incident.lon is None:
            # kept as wanted: placing the incident on the map (or its unit's next fix) sends them
            self._want(incident, [*slots, *self._wanted(incident)])
            if incident.reported_by:
                self.unplaced_calls.add(incident.reported_by)
            self._alert(incident, "no_location", "no location known: place the incident on the map")
            return
        shortlists = self.shortlists(incident, slots, self.shortlist)
        if self.route_later is not None and any(s.recommendations for s in shortlists):
            self.route_later(incident, shortlists, actor, reason)
        else:
            self.finish_fill(incident.id, slots, {}, actor, reason)

    def finish_fill(
        self,
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
        incident = self.get_incident(incident_id)
        if incident.state in ("resolved", "handed_over", "closed"):
            return []
        sent: list[Order] = []
        wanted: list[Slot] = []
        for shortlist in self.shortlists(incident, slots, self.shortlist):
            ranked = with_drive_times(shortlist.recommendations, legs)
            picks = [r for r in ranked if r.recommendable][: shortlist.slot.count]
            for pick in picks:
                order = self.send_order(
                    incident,
                    pick.unit_id,
                    actor,
                    kinds=shortlist.slot.kinds,
                    why=f"{reason}: {pick.reason}",
                    eta_s=round(pick.eta_s),
                )
                sent.append(order)
            missing = shortlist.slot.count - len(picks)
            if missing:
                wanted.append(Slot(shortlist.slot.kinds, missing))
                if not retry:
                    kinds = "/".join(sorted(shortlist.slot.kinds))
                    passed = [f"{r.unit_id}: {r.reason}" for r in ranked if not r.recommendable]
                    why = f" (nearest passed over: {'; '.join(passed[:3])})" if passed else ""
                    self._alert(
                        incident,
                        "no_unit",
                        f"{missing} more {kinds} needed: none available{why}; sent when one is",
                    )
        self._want(incident, wanted + (self._wanted(incident) if not retry else []))
        return sent

    @staticmethod
    def _wanted(incident: Incident) -> list[Slot]:
        return [Slot(frozenset(s["kinds"]), s["count"]) for s in _json(incident.wanted) or []]

    def _want(self, incident: Incident, slots: list[Slot]) -> None:
        value = json.dumps([{"kinds": sorted(s.kinds), "count": s.count} for s in slots])
        value = value if slots else None
        if value != incident.wanted:
            incident.wanted = value
            Incident.update(wanted=value).where(Incident.id == incident.id).execute()

    def _fill_wanted(self) -> None:
        """Incidents still lacking units get them as soon as any are available."""
        # read them all first: on SQLite a read still open when the orders are written
        # cannot become a write once the store writer has committed ("database is locked")
        rows = list(
            Incident.select().where(
                Incident.wanted.is_null(False)
                & Incident.state.in_(ACTIVE_INCIDENT_STATES)
                & Incident.lat.is_null(False)
            )
        )
        for incident in rows:
            self.finish_fill(
                incident.id, self._wanted(incident), {}, "dispatch", "wanted", retry=True
            )

    def _send_wanted(self, incident: Incident, actor: str, reason: str) -> None:
        """What an incident still waits for, now that it has a place."""
        wanted = self._wanted(incident)
        if wanted and incident.lat is not None and incident.state in ACTIVE_INCIDENT_STATES:
            self._want(incident, [])
            self.fill(incident, wanted, actor, reason=reason)

    def shortlists(self, incident: Incident, slots: list[Slot], size: int) -> list[Shortlist]:
        """Each slot's best units, none counted twice, none already sent to the incident."""
        taken = {o.unit_id for o in Order.select(Order.unit).where(Order.incident == incident)}
        if incident.reported_by:
            taken.add(incident.reported_by)
        out = []
        for slot in slots:
            recs = self.recommendations(
                incident, slot.kinds, frozenset(taken), max(size, slot.count)
            )
            out.append(Shortlist(slot, recs))
            taken.update(r.unit_id for r in recs if r.recommendable)
        return out

    def recommendations(
        self,
        incident: Incident,
        kinds: frozenset[str] = RESPONDING_KINDS,
        exclude: frozenset[str] = frozenset(),
        limit: int = 10,
    ) -> list[Recommendation]:
        if incident.lat is None or incident.lon is None:
            raise OrderRefused("the incident has no location: set one to get recommendations")
        scene = Scene(
            incident.lat,
            incident.lon,
            incident.grid,
            self.grids.neighbours(incident.grid) if incident.grid else frozenset(),
        )
        nearby = self.live.nearby(incident.lat, incident.lon, kinds)
        return recommend(scene, nearby, self.clock(), self.rules, kinds, exclude, limit)

    def recommend_for(self, incident_id: str, limit: int) -> tuple[Incident, list[Recommendation]]:
        """The dispatcher's list: units already sent to the incident are left out."""
        incident = self.get_incident(incident_id)
        sent = {o.unit_id for o in self._open_orders_of(incident)}
        if incident.reported_by:
            sent.add(incident.reported_by)
        return incident, self.recommendations(incident, RESPONDING_KINDS, frozenset(sent), limit)

    def dispatch_units(
        self, incident_id: str, unit_ids: list[str], actor: str, divert: bool = False
    ) -> list[Order]:
        """A dispatcher sends units; one busy elsewhere goes only with `divert`."""
        incident = self.get_incident(incident_id)
        self._step(incident, "order_sent")
        units = [self._unit(u) for u in dict.fromkeys(unit_ids)]
        holding = {o.unit_id for o in self._open_orders_of(incident)}
        for unit in units:
            if unit.unit_id in holding:
                raise OrderRefused(f"unit {unit.unit_id} already has an order for this incident")
            if unit.status == "offline":
                raise OrderRefused(f"unit {unit.unit_id} is offline: its link is down")
            busy = [i for _, i in _OPEN_STATES_OF_UNIT.rows(unit.unit_id, *OPEN_ORDER_STATES)]
            if (busy or unit.status == "out_of_service") and not divert:
                what = f"has an order for incident {busy[0]}" if busy else "is out of service"
                raise OrderRefused(f"unit {unit.unit_id} {what}: send with divert to take it")
        self._want(incident, [])  # the dispatcher chose: the plan's remaining wants are off
        orders = []
        for unit in units:
            # asked again: replacing one diverted unit's order may have sent the next one
            for order, _ in self.open_orders(unit.unit_id) if divert else ():
                self._end_order(
                    order, "cancelled", f"diverted to incident {incident.id}", actor, replace=True
                )
            kinds = RESPONDING_KINDS if unit.kind in RESPONDING_KINDS else {unit.kind}
            orders.append(self.send_order(incident, unit.unit_id, actor, kinds=kinds))
        return orders

    def _unit(self, unit_id: str) -> UnitState:
        unit = self.live.get(unit_id)
        if unit is None:
            raise OrderRefused(f"no unit {unit_id!r}", 422)
        return unit

    def send_order(
        self,
        incident: Incident,
        unit_id: str,
        actor: str,
        kinds: Iterable[str],
        **why: Any,
    ) -> Order:
        now = self.clock()
        duty = incident.duty_level or self.duty_level
        with db.atomic():
            order = Order(
                id=new_id(),
                incident=incident,
                unit=unit_id,
                sent_at=now,
                ack_deadline=now + self.plans.ack_timeout_s(duty, incident.priority),
                kinds=",".join(sorted(kinds)),
            )
            insert(order)
            state = next_incident_state(incident.state, "order_sent")
            if incident.dispatched_at is None:
                incident.dispatched_at = now
            incident.state = state
            incident.first_unit = incident.first_unit or unit_id
            save(incident)
            record_event(
                actor,
                "order_sent",
                incident_id=incident.id,
                unit_id=unit_id,
                order_id=order.id,
                **why,
            )
            self._refresh_unit(unit_id, now)
        self._watch(order, incident)
        self._send(order, incident, "dispatch", now)
        self.notifier.console("order", order_public(order))
        self._incident_changed(incident)
        return order

    def _send(self, order: Order, incident: Incident, kind: str, ts: float) -> None:
        message = order_message(order, incident, kind, ts)
        self.notifier.order_to_terminals(order.unit_id, {**message, **self._way(order, incident)})
        self.notifier.order_to_agent(order.unit_id, message)

    # -- ending and replacing orders ------------------------------------------------------
    def cancel_order(self, order_id: str, reason: str, actor: str, replace: bool) -> Order:
        order = self._order(order_id)
        if order.state in FINAL_ORDER_STATES:
            raise OrderRefused(f"order {order_id} is already {order.state}")
        return self._end_order(order, "cancelled", reason, actor, replace)

    def reassign_order(
        self, order_id: str, unit_id: str, reason: str, actor: str, divert: bool = False
    ) -> Order:
        """Take the order from its unit and give the incident to another one."""
        order = self._order(order_id)
        if order.state in FINAL_ORDER_STATES:
            raise OrderRefused(f"order {order_id} is already {order.state}")
        if unit_id == order.unit_id:
            raise OrderRefused(f"order {order_id} is already with unit {unit_id}")
        self._unit(unit_id)
        self._end_order(order, "cancelled", reason or f"reassigned to {unit_id}", actor, False)
        return self.dispatch_units(order.incident_id, [unit_id], actor, divert)[0]

    def _order(self, order_id: str) -> Order:
        order = Order.get_or_none(Order.id == order_id)
        if order is None:
            raise OrderRefused(f"no order {order_id!r}", 404)
        return order

    def _end_order(self, order: Order, state: str, reason: str, actor: str, replace: bool) -> Order:
        """Cancel or time out an order: its unit is told; with `replace` the next unit goes."""
        now = self.clock()
        incident = order.incident
        with db.atomic():
            order.state, order.end_reason = state, reason
            setattr(order, f"{state}_at", now)
            save(order)
            record_event(
                actor,
                f"order_{state}",
                incident_id=incident.id,
                unit_id=order.unit_id,
                order_id=order.id,
                reason=reason,
            )
            self._refresh_unit(order.unit_id, now)
        self._forget(order)
        self._send(order, incident, "cancel", now)
        self.notifier.console("order", order_public(order))
        if replace:
            self._replace(order, incident, actor)
        return order

    def _replace(self, order: Order, incident: Incident, actor: str) -> None:
        """The next-best unit of the same kinds goes in place of one that will not."""
        if incident.state in ("resolved", "handed_over", "closed"):
            return
        kinds = frozenset((order.kinds or ",".join(RESPONDING_KINDS)).split(","))
        why = order.end_reason or order.state.replace("_", " ")
        self._alert(
            incident,
            "escalation",
            f"unit {order.unit_id} {order.state.replace('_', ' ')} ({why}): sending the next unit",
            order_id=order.id,
            unit_id=order.unit_id,
        )
        self.fill(incident, [Slot(kinds, 1)], actor, reason=f"replaces {order.unit_id}")

    def _alert(self, incident: Incident, kind: str, message: str, **refs: Any) -> None:
        log.warning("incident %s: %s", incident.id, message)
        record_event("dispatch", kind, incident_id=incident.id, message=message, **refs)
        self.notifier.console(
            "alert", {"kind": kind, "incident_id": incident.id, "message": message, **refs}
        )
        self._incident_changed(incident)

    # -- acks ----------------------------------------------------------------------------
    def on_ack(
        self,
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
        order = by_id(Order, order_id)
        if order is None:
            raise OrderRefused(f"no order {order_id!r}", 404)
        if order.unit_id != unit_id:
            raise OrderRefused(f"order {order_id} belongs to another unit")
        try:
            new_state = next_order_state(order.state, status)
        except LifecycleError as exc:
            raise OrderRefused(str(exc)) from None
        if new_state is None:
            metrics.DUPLICATES.labels("ack").inc()
            return order_public(order)
        when = None
        if at is None and received_at is not None:
            stamps = [getattr(order, f"{step}_at") for step in ORDER_TIMESTAMPS]
            when = pressed_at(device_ts, received_at, max(t for t in stamps if t is not None))
            if when.distrust:
                metrics.DEVICE_TIME_DISTRUSTED.labels("ack").inc()
        now = at if at is not None else when.ts if when is not None else self.clock()
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
                **(when.public() if when is not None else {}),
            )
            self._refresh_unit(unit_id, now)
            incident = by_id(Incident, order.incident_id)
            changed = self._advance_incident(incident, new_state, now)
        if new_state in ("on_scene", *FINAL_ORDER_STATES):
            self._forget(order)
        self.notifier.console("order", order_public(order))
        # most acks leave the incident as it was: its post still hears how its call goes
        self._incident_changed(incident, to_consoles=changed)
        if new_state == "declined":
            self._replace(order, incident, "dispatch")
        return order_public(order)

    def _advance_incident(self, incident: Incident, order_state: str, now: float) -> bool:
        """The incident's step after one of its orders moved; whether it changed."""
        state, on_scene_at, resolved_at = incident.state, incident.on_scene_at, None
        if order_state == "on_scene":
            state = next_incident_state(state, "arrived")
            on_scene_at = on_scene_at or now
        elif order_state in FINAL_ORDER_STATES:
            states = {step for (step,) in _ORDER_STATES_OF_INCIDENT.rows(incident.id)}
            if states <= FINAL_ORDER_STATES and "cleared" in states:
                state = next_incident_state(state, "orders_done")
                resolved_at = now if state != incident.state else None
        if (state, on_scene_at) == (incident.state, incident.on_scene_at):
            return False
        incident.state, incident.on_scene_at = state, on_scene_at
        incident.resolved_at = resolved_at or incident.resolved_at
        save(incident)
        return True

    # -- units ---------------------------------------------------------------------------
    def _refresh_unit(self, unit_id: str, now: float) -> None:
        unit = self.live.get(unit_id)
        if unit is None:
            return
        states = [state for state, _ in _OPEN_STATES_OF_UNIT.rows(unit_id, *OPEN_ORDER_STATES)]
        status = unit_status(states, unit.online, unit.out_of_service)
        if self.live.set_status(unit_id, status, now):
            _SET_UNIT_STATUS.run(status, now, unit_id)

    def set_out_of_service(self, unit_id: str, out: bool, actor: str) -> UnitState:
        unit = self._unit(unit_id)
        if unit.out_of_service != out:
            self.live.set_out_of_service(unit_id, out)
            with db.atomic():
                Unit.update(out_of_service=out).where(Unit.id == unit_id).execute()
                record_event(actor, "out_of_service" if out else "in_service", unit_id=unit_id)
                self._refresh_unit(unit_id, self.clock())
        return unit

    def on_unit_online(self, unit_id: str, online: bool, ts: float, why: str = "") -> None:
        """The agent's state message (sent on every (re)connect): open orders go again."""
        if self.live.set_online(unit_id, online):
            with db.atomic():
                Unit.update(online=online, online_since=ts).where(Unit.id == unit_id).execute()
                record_event(
                    f"agent:{unit_id}",
                    "online" if online else "offline",
                    unit_id=unit_id,
                    reason=why or None,
                )
                self._refresh_unit(unit_id, self.clock())
        if online:
            self.live.heard(unit_id, self.clock())
            for order, incident in self.open_orders(unit_id):
                self.notifier.order_to_agent(unit_id, order_message(order, incident))

    def heard(self, unit_id: str, at: float) -> None:
        """Any message from a unit: it is online (a position or health message says so too)."""
        self.live.heard(unit_id, at)
        unit = self.live.get(unit_id)
        if unit is not None and not unit.online:
            self.on_unit_online(unit_id, True, at)

    # -- timers --------------------------------------------------------------------------
    def tick(self) -> int:
        """Orders past their ack deadline go to the next unit; silent units go offline.

        Deadlines live in the store, so after a restart the first tick picks them up.
        """
        now = self.clock()
        due = Order.select().where(
            Order.state.in_(tuple(AWAITING_ACCEPT)) & (Order.ack_deadline <= now)
        )
        count = 0
        for order in list(due):
            if escalation_due(order.state, order.ack_deadline, now):
                waited = now - order.sent_at
                self._end_order(
                    order, "timed_out", f"not accepted in {waited:.0f} s", "dispatch", True
                )
                metrics.ESCALATIONS.inc()
                count += 1
        for unit in list(self.live.units.values()):
            if unit.online and silent_too_long(unit.last_heard, now, self.offline_after_s):
                self.on_unit_online(unit.unit_id, False, now, why="missing heartbeats")
        self._fill_wanted()
        self._escalate_unheard_alarms(now)
        return count

    # -- arrival -------------------------------------------------------------------------
    def _watch(self, order: Order, incident: Incident) -> None:
        unit = self.live.get(order.unit_id)
        if (
            unit is not None
            and incident.lat is not None
            and order.state
            in AWAITING_ACCEPT
            | {
                "accepted",
                "en_route",
            }
        ):
            unit.targets[order.id] = Target(incident.lat, incident.lon, order.sent_at)

    def _forget(self, order: Order) -> None:
        unit = self.live.get(order.unit_id)
        if unit is not None:
            unit.targets.pop(order.id, None)

    def on_fixes(self, unit: UnitState, fixes: list[dict]) -> None:
        """Fixes of a unit with a scene to reach: inside the radius long enough = on scene."""
        for order_id, target in list(unit.targets.items()):
            for fix in sorted(fixes, key=lambda f: f["ts"]):
                if fix["ts"] < target.since:
                    continue
                target.entered_at, arrived = track_arrival(
                    target.entered_at, fix, target.lat, target.lon, self.arrival
                )
                if arrived:
                    self.on_ack(
                        unit.unit_id, order_id, "on_scene", actor="arrival", at=target.entered_at
                    )
                    break

    # -- cold spots ---------------------------------------------------------------------
    def coverage(self, cell_m: float) -> list[Cell]:
        """The cold-spot map over the grids, or over the units where there are no grids."""
        bbox = self.grids.bbox() or self.live.bbox()
        if bbox is None:
            return []
        count = sum(1 for _ in cells(bbox, cell_m))
        if count > MAX_COVERAGE_CELLS:
            raise OrderRefused(
                f"{count} cells of {cell_m:.0f} m: too many for one map "
                f"(at most {MAX_COVERAGE_CELLS}); ask for larger cells",
                422,
            )
        return coverage(
            bbox,
            cell_m,
            lambda lat, lon: self.live.nearby(lat, lon, RESPONDING_KINDS),
            self.clock(),
            self.rules,
            self.coverage_reach_s,
        )

    # -- settings at run time --------------------------------------------------------------
    def set_duty_level(self, level: str, actor: str) -> str:
        now = self.clock()
        with db.atomic():
            row = {"value": level, "changed_at": now, "changed_by": actor}
            # an upsert both SQLite and PostgreSQL know (REPLACE is SQLite's alone)
            Setting.insert(key="duty_level", **row).on_conflict(
                conflict_target=[Setting.key], update=row
            ).execute()
            record_event(actor, "duty_level", level=level, previous=self.duty_level)
        self.duty_level = level
        self.notifier.console("duty", {"level": level, "changed_at": now, "changed_by": actor})
        return level

    # -- the reporter's view -------------------------------------------------------------
    def _incident_changed(self, incident: Incident, to_consoles: bool = True) -> None:
        """Consoles see every change; the post that raised the alarm sees its call's."""
        if to_consoles:
            self.notifier.console("incident", incident_public(incident))
        if incident.reported_by:
            self.notifier.reporter(
                incident.reported_by, {"ts": self.clock(), **self.call_status(incident)}
            )

    def _way(self, order: Order, incident: Incident) -> dict[str, Any]:
        """How far the unit is from the scene now, and its estimated arrival (for its screen)."""
        unit = self.live.get(order.unit_id)
        if unit is None or unit.fix is None or incident.lat is None or incident.lon is None:
            return {"distance_m": None, "eta_s": None}
        away = distance_m(unit.fix["lat"], unit.fix["lon"], incident.lat, incident.lon)
        return {"distance_m": round(away), "eta_s": round(self.rules.eta.eta_s(away, unit.kind))}

    def call_status(self, incident: Incident) -> dict[str, Any]:
        """A call for help as its kiosk shows it: the step it is at, and each unit coming,
        with a live ETA from where the unit is now (the recommendation's ETA model)."""
        coming = []
        for order in Order.select().where(
            (Order.incident == incident)
            & Order.state.not_in(tuple(FINAL_ORDER_STATES - {"cleared"}))
        ):
            unit = self.live.get(order.unit_id)
            eta_s = self._way(order, incident)["eta_s"]
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

    def open_call(self, unit_id: str) -> dict[str, Any] | None:
        """The post's latest call for help still being handled, for a kiosk that reconnects."""
        incident = (
            Incident.select()
            .where((Incident.reported_by == unit_id) & Incident.state.in_(ACTIVE_INCIDENT_STATES))
            .order_by(Incident.created_at.desc())
            .first()
        )
        return None if incident is None else self.call_status(incident)

    # -- (re)delivery --------------------------------------------------------------------
    def _open_orders_of(self, incident: Incident) -> list[Order]:
        return _OPEN_ORDERS_OF_INCIDENT.models(Order, incident.id, *OPEN_ORDER_STATES)

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

    def sync_terminal(self, unit_id: str, sid: str) -> dict[str, Any]:
        """A terminal (re)connected: it gets every order its unit still holds, and the answer
        carries the unit's own call for help still being handled (a kiosk shows it)."""
        pending = self.open_orders(unit_id)
        for order, incident in pending:
            message = {**order_message(order, incident), **self._way(order, incident)}
            self.notifier.order_to_terminals(unit_id, message, sid=sid)
        return {"orders": len(pending), "call": self.open_call(unit_id)}

    def resend_all_to_agents(self) -> None:
        """The broker session (re)connected: orders no agent has confirmed go out again."""
        for order, incident in self.open_orders():
            if order.state == "sent":
                self.notifier.order_to_agent(order.unit_id, order_message(order, incident))
