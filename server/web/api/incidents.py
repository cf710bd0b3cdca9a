"""Incidents and what dispatchers do with them: create, change, note, send the plan,
resolve, hand over, close, follow up; who would arrive first; dispatch; the timeline."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from server.orders import OrderRefused, dispatching, incidents, queries, views
from server.orders.views import INCIDENT_TIMESTAMPS, ORDER_TIMESTAMPS
from server.rules.dispatch import ECHELONS, with_drive_times
from server.rules.lifecycle import HANDOVER_KINDS, INCIDENT_STATES, ORDER_STATES
from server.rules.refusals import refusal
from server.store import Incident, Order, db
from server.web.api.common import (
    ActionIn,
    PeriodQuery,
    actor,
    area,
    book,
    crew_field,
    in_worker,
    refuse,
    refused,
    runtime,
)
from wire import Text

blp = area("incidents", "Incidents and the dispatcher's actions on them")

FOLLOWUP_OUTCOMES = ("satisfied", "unsatisfied", "no_answer", "other")


class LocationOut(Schema):
    lat = fields.Float(allow_none=True)
    lon = fields.Float(allow_none=True)
    address = fields.String()


class CallerOut(Schema):
    name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


OrderOut = Schema.from_dict(
    {
        "order_id": fields.String(required=True),
        "incident_id": fields.String(required=True),
        "unit_id": fields.String(required=True),
        "kind": fields.String(),
        "state": fields.String(required=True, validate=validate.OneOf(ORDER_STATES)),
        "decline_reason": fields.String(),
        "end_reason": fields.String(allow_none=True),
        "ack_deadline": fields.Float(
            allow_none=True, metadata={"description": "escalated if not accepted by then"}
        ),
        "arrival_s": fields.Float(allow_none=True, metadata={"description": "on scene - sent"}),
        "call_out": fields.Boolean(
            metadata={"description": "one of a call-out's tasks: no one replaces it"}
        ),
        "crew": crew_field("who was on the unit when it was sent"),
        **{f"{step}_at": fields.Float(allow_none=True) for step in ORDER_TIMESTAMPS},
    },
    name="Order",
)

IncidentOut = Schema.from_dict(
    {
        "id": fields.String(required=True),
        "category": fields.String(required=True),
        "priority": fields.Integer(required=True),
        "state": fields.String(required=True, validate=validate.OneOf(INCIDENT_STATES)),
        "location": fields.Nested(LocationOut),
        "grid": fields.String(allow_none=True),
        "summary": fields.String(),
        "summary_code": fields.String(
            metadata={"description": "a summary the server wrote (panic_at), for screens to word"}
        ),
        "summary_params": fields.Dict(metadata={"description": "the values it names"}),
        "caller": fields.Nested(CallerOut),
        "reported_by": fields.String(allow_none=True),
        "duty_level": fields.String(allow_none=True),
        "first_unit": fields.String(allow_none=True),
        "handover": fields.Dict(allow_none=True),
        "disposition": fields.String(allow_none=True),
        "followup": fields.Dict(allow_none=True),
        "followup_at": fields.Float(allow_none=True),
        "wanted": fields.List(
            fields.Dict(),
            allow_none=True,
            metadata={"description": "units the plan still lacks: sent when available"},
        ),
        "location_source": fields.String(
            allow_none=True,
            metadata={
                "description": "where the location came from: alarm_fix, unit_fix, post, "
                "last_known (see location_age_s) or dispatcher; null: none known"
            },
        ),
        "location_age_s": fields.Float(allow_none=True),
        "presses": fields.Integer(
            allow_none=True, metadata={"description": "panic presses of its unit it holds"}
        ),
        "arrival_s": fields.Float(
            allow_none=True, metadata={"description": "first unit on scene - first dispatch"}
        ),
        **{f"{step}_at": fields.Float(allow_none=True) for step in INCIDENT_TIMESTAMPS},
        "merged_into": fields.String(
            allow_none=True, metadata={"description": "the call this one was merged into"}
        ),
    },
    name="Incident",
)


# IncidentOut is a class Schema.from_dict makes, which mypy cannot take for a base
class IncidentDetailOut(IncidentOut):  # type: ignore[valid-type,misc]
    orders = fields.List(fields.Nested(OrderOut))


class RecommendationOut(Schema):
    unit_id = fields.String(required=True)
    kind = fields.String(required=True)
    name = fields.String()
    grid = fields.String()
    status = fields.String()
    distance_m = fields.Float(required=True, metadata={"description": "straight line"})
    eta_s = fields.Float(required=True, metadata={"description": "estimated arrival"})
    eta_source = fields.String(validate=validate.OneOf(("straight_line", "osrm")))
    echelon = fields.String(validate=validate.OneOf(ECHELONS))
    position_age_s = fields.Float()
    recommendable = fields.Boolean(required=True)
    reason = fields.String(required=True, metadata={"description": "why, or why not"})


class RoutingOut(Schema):
    source = fields.String(validate=validate.OneOf(("straight_line", "osrm")))
    error = fields.String(allow_none=True, metadata={"description": "why OSRM was not used"})


class RecommendationsOut(Schema):
    incident_id = fields.String(required=True)
    grid = fields.String(allow_none=True)
    routing = fields.Nested(RoutingOut)
    recommendations = fields.List(fields.Nested(RecommendationOut))


class EventOut(Schema):
    ts = fields.Float(required=True)
    actor = fields.String(required=True, metadata={"description": "who did it"})
    kind = fields.String(required=True)
    unit_id = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True)
    data = fields.Dict()


class LocationIn(Schema):
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    address = Text(load_default="", validate=validate.Length(max=500))


class CallerIn(Schema):
    name = Text(validate=validate.Length(max=200))
    phone = Text(validate=validate.Length(max=64))


class IncidentIn(ActionIn):
    category = Text(required=True, validate=validate.Length(min=1, max=32))
    priority = fields.Integer(required=True, validate=validate.Range(1, 4))
    location = fields.Nested(LocationIn, required=True)
    summary = Text(load_default="", validate=validate.Length(max=1000))
    caller = fields.Nested(CallerIn)
    apply_plan = fields.Boolean(
        load_default=False, metadata={"description": "send the response plan's units at once"}
    )


class IncidentPatch(ActionIn):
    category = Text(validate=validate.Length(min=1, max=32))
    priority = fields.Integer(validate=validate.Range(1, 4))
    location = fields.Nested(LocationIn)
    summary = Text(validate=validate.Length(max=1000))
    caller = fields.Nested(CallerIn)

    @validates_schema
    def something(self, data: dict, **_: Any) -> None:
        if not set(data) - {"by"}:
            raise ValidationError("change at least one of category, priority, location, ...")


class NoteIn(ActionIn):
    text = Text(required=True, validate=validate.Length(min=1, max=500))


class DispatchIn(ActionIn):
    unit_ids = fields.List(
        Text(validate=validate.Length(min=1, max=64)),
        required=True,
        validate=validate.Length(min=1, max=20),
    )
    divert = fields.Boolean(
        load_default=False,
        metadata={"description": "take units busy elsewhere (their orders there are cancelled)"},
    )


class CallOutIn(ActionIn):
    radius_m = fields.Float(
        required=True,
        validate=validate.Range(50, 20_000),
        metadata={"description": "everyone on foot the call's plan names within this of the scene"},
    )


class CallOutOut(Schema):
    orders = fields.List(fields.Nested(OrderOut), required=True)
    reached = fields.Integer(
        required=True, metadata={"description": "people with this task, those sent before too"}
    )


class HandoverIn(ActionIn):
    kind = fields.String(required=True, validate=validate.OneOf(HANDOVER_KINDS))
    to_department = Text(validate=validate.Length(min=1, max=200))
    to_unit = Text(validate=validate.Length(min=1, max=64))
    reason = Text(required=True, validate=validate.Length(min=1, max=500))

    @validates_schema
    def someone(self, data: dict, **_: Any) -> None:
        if not data.get("to_department") and not data.get("to_unit"):
            raise ValidationError("name to_department or to_unit")


class ResolveIn(ActionIn):
    note = Text(load_default="", validate=validate.Length(max=500))


class CloseIn(ActionIn):
    disposition = Text(required=True, validate=validate.Length(min=1, max=500))


class FollowupIn(ActionIn):
    outcome = fields.String(required=True, validate=validate.OneOf(FOLLOWUP_OUTCOMES))
    note = Text(load_default="", validate=validate.Length(max=500))


class RecommendQuery(Schema):
    limit = fields.Integer(load_default=None, validate=validate.Range(1, 50))


class IncidentQuery(PeriodQuery):
    state = fields.String(validate=validate.OneOf((*INCIDENT_STATES, "open")))
    grid = Text(validate=validate.Length(min=1, max=64))
    category = Text(validate=validate.Length(min=1, max=32))
    unit = Text(
        validate=validate.Length(min=1, max=64), metadata={"description": "a unit sent to it"}
    )
    text = Text(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "in the summary, address, disposition, id or a note"},
    )
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))


class MergeIn(ActionIn):
    into = Text(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the incident kept; this one closes as merged into it"},
    )


def incident_detail(incident: Incident) -> dict[str, Any]:
    with db.connection_context():
        orders = incident.orders.order_by(Order.sent_at)
        return {
            **views.incident_public(incident),
            "orders": [views.order_public(o) for o in orders],
        }


@blp.route("/incidents")
class Incidents(MethodView):
    @blp.arguments(IncidentQuery(), location="query")
    @blp.response(200, IncidentOut(many=True))
    def get(self, query: dict):
        """Incidents created in a period (`since`, `until`; any time without them), newest
        first, by state (`open`: not closed), grid, category, a unit sent and text."""
        with db.connection_context():
            found = queries.find_incidents(queries.IncidentSearch(**query))
            return [views.incident_public(i) for i in found]

    @blp.arguments(IncidentIn())
    @blp.response(201, IncidentDetailOut)
    def post(self, body: dict):
        """A new incident (its grid found by point in polygon); `apply_plan` sends its units."""
        who = actor(body)
        incident = in_worker(incidents.create, book(), body, who)
        return incident_detail(incident)


@blp.route("/incidents/<incident_id>")
class IncidentDetail(MethodView):
    @blp.response(200, IncidentDetailOut)
    def get(self, incident_id: str):
        """One incident with its orders and the time of every step."""
        with db.connection_context():
            incident = Incident.get_or_none(Incident.id == incident_id)
            if incident is None:
                refuse(404, refusal("no_incident", incident=incident_id))
            return incident_detail(incident)  # type: ignore[arg-type]  # untyped abort raised

    @blp.arguments(IncidentPatch())
    @blp.response(200, IncidentDetailOut)
    def patch(self, body: dict, incident_id: str):
        """Change what is known; the units on it get an order of kind `update`."""
        who = actor(body)
        return incident_detail(in_worker(incidents.update, book(), incident_id, body, who))


def _incident_action(
    path: str, schema: type[Schema], change: Any, field: str | None, doc: str, status: int = 200
):
    """A POST on an incident that runs one change of the order book with one field of the
    body (or, with `field` None, all of it)."""

    def view(body: dict, incident_id: str):
        who = actor(body)
        given = body if field is None else body[field]
        incident = in_worker(change, book(), incident_id, given, who)
        return incident_detail(incident)

    view.__doc__ = doc
    view.__name__ = f"incident_{change.__name__}"
    blp.route(f"/incidents/<incident_id>/{path}", methods=["POST"])(
        blp.arguments(schema())(blp.response(status, IncidentDetailOut)(view))
    )


_incident_action(
    "notes", NoteIn, incidents.add_note, "text", "Add a note; the units on it get an update.", 201
)
_incident_action(
    "plan",
    ActionIn,
    dispatching.send_plan,
    None,
    "Send the response plan's units (for an incident entered without `apply_plan`).",
)
_incident_action(
    "resolve", ResolveIn, incidents.resolve, "note", "Resolved: handled on scene or by phone."
)
_incident_action(
    "close",
    CloseIn,
    incidents.close,
    "disposition",
    "Close with a disposition; open orders are cancelled.",
)


_incident_action(
    "handover",
    HandoverIn,
    incidents.hand_over,
    None,
    "Hand over to a department or another unit (scene, station, station to police station).",
)
_incident_action(
    "merge",
    MergeIn,
    incidents.merge,
    "into",
    "Merge this call into another raised for the same event: its orders, alarms, alerts and "
    "timeline join that one's (the one answered), and it closes as merged.",
)
_incident_action(
    "followup",
    FollowupIn,
    incidents.record_followup,
    None,
    "Record the same-day call back to the caller.",
)


@blp.route("/incidents/<incident_id>/recommendations")
@blp.arguments(RecommendQuery(), location="query")
@blp.response(200, RecommendationsOut)
@blp.alt_response(
    409, schema="Error", description="the incident has no location yet: set one first"
)
@blp.alt_response(503, schema="Error", description="the server is busy: try again in a moment")
def recommendations(query: dict, incident_id: str):
    """Available units ranked by estimated arrival, and the nearer ones passed over, with why.

    With `FIELDLINK_OSRM_URL`, one OSRM table request re-ranks them by drive time; if it
    fails, the straight-line estimate stands and `routing.error` says why.
    """
    rt = runtime()
    limit = query["limit"] or rt.settings.recommend_limit
    wanted = max(limit, rt.settings.osrm_shortlist) if rt.drive_times.router else limit
    incident, recs = in_worker(dispatching.recommend_for, rt.book, incident_id, wanted)
    legs, error = rt.drive_times.of((incident.lat, incident.lon), recs)
    if legs:
        recs = with_drive_times(recs, legs)
    good = [r for r in recs if r.recommendable][:limit]
    passed = [r for r in recs if not r.recommendable][:limit]
    return {
        "incident_id": incident.id,
        "grid": incident.grid,
        "routing": {"source": "osrm" if legs else "straight_line", "error": error},
        "recommendations": [vars(r) for r in good + passed],
    }


@blp.route("/incidents/<incident_id>/orders", methods=["POST"])
@blp.arguments(DispatchIn())
@blp.response(201, OrderOut(many=True))
def dispatch(body: dict, incident_id: str):
    """Dispatch one or several units; a unit busy elsewhere goes only with `divert`."""
    who = actor(body)
    orders = in_worker(
        dispatching.dispatch_units, book(), incident_id, body["unit_ids"], who, body["divert"]
    )
    return [views.order_public(o) for o in orders]


@blp.route("/incidents/<incident_id>/callout", methods=["POST"])
@blp.arguments(CallOutIn())
@blp.response(201, CallOutOut)
def call_out(body: dict, incident_id: str):
    """One task to everyone on foot within a radius whom the call's plan names (a search, a
    crowd, a lost person): each accepts or declines on their phone; the incident's orders
    (`call_out`) count them."""
    who = actor(body)
    orders, reached = in_worker(dispatching.call_out, book(), incident_id, body["radius_m"], who)
    return {"orders": [views.order_public(o) for o in orders], "reached": reached}


@blp.route("/incidents/<incident_id>/timeline")
@blp.response(200, EventOut(many=True))
def timeline(incident_id: str):
    """Everything that happened to the incident, who did it and when, oldest first."""
    with db.connection_context():
        try:
            return views.timeline(incident_id)
        except OrderRefused as exc:
            refused(exc)


# -- orders ------------------------------------------------------------------------------
