"""REST API `/api/v1`: units, incidents and the dispatcher's actions, grids, posts, plans.

Schemas are marshmallow, and flask-smorest turns them into the OpenAPI document at
`/api/v1/openapi.json`. Errors are JSON: `{"code", "status", "message"}`. Reads of the store
happen in the request; every change runs in the ingest worker (`pipeline.call`), in order
with the units' acks and positions. Argument schemas are given as instances: from a class,
webargs would build a schema for every request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, current_app, request
from flask.views import MethodView
from flask_smorest import Api, Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server import auth, clock, metrics
from server.coverage import summary
from server.dispatch import ECHELONS, with_drive_times
from server.export import incidents_csv, kpis_csv, track_geojson, track_gpx
from server.geo import GeoError, GridMap, assign_post_grids, parse_grids, parse_posts, posts_geojson
from server.kpis import GROUPS, kpis_by
from server.lifecycle import HANDOVER_KINDS, INCIDENT_STATES, ORDER_STATES, UNIT_STATUSES
from server.orders import (
    INCIDENT_TIMESTAMPS,
    ORDER_TIMESTAMPS,
    OrderRefused,
    incident_public,
    order_public,
)
from server.patrol import PatrolRules, patrol_report
from server.plans import DUTY_LEVELS
from server.store import (
    Incident,
    Order,
    db,
    incident_records,
    load_posts,
    save_grids,
    save_posts,
    unit_track,
)
from wire import Text, unwritable

blp = Blueprint("v1", __name__, url_prefix="/api/v1", description="Units, incidents, orders")


@blp.before_request
def plain_path_ids() -> None:
    """An id in the path holding a control character names nothing (PostgreSQL refuses NUL)."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (problem := unwritable(value)):
            abort(404, message=f"no such {name.removesuffix('_id')}: {problem}")


FOLLOWUP_OUTCOMES = ("satisfied", "unsatisfied", "no_answer", "other")


# -- schemas: out ------------------------------------------------------------------------
class FixOut(Schema):
    ts = fields.Float(required=True, metadata={"description": "fix time, UTC epoch seconds"})
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)
    speed = fields.Float(metadata={"description": "m/s"})
    heading = fields.Float(metadata={"description": "degrees"})
    acc = fields.Float(metadata={"description": "metres"})
    alt = fields.Float()
    mode = fields.Integer()


class UnitOut(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    name = fields.String()
    grid = fields.String()
    home_post = fields.String(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(UNIT_STATUSES))
    status_since = fields.Float(metadata={"description": "when the unit entered its status"})
    online = fields.Boolean()
    out_of_service = fields.Boolean()
    position = fields.Nested(FixOut, allow_none=True)
    clock_offset_s = fields.Float(
        allow_none=True, metadata={"description": "server clock minus the unit's, seconds"}
    )


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
    },
    name="Incident",
)


class IncidentDetailOut(IncidentOut):
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


class DutyOut(Schema):
    level = fields.String(validate=validate.OneOf(DUTY_LEVELS))


class GeoJsonCollection(Schema):
    """A GeoJSON FeatureCollection (RFC 7946)."""

    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    features = fields.List(fields.Dict(), required=True)


class ImportOut(Schema):
    imported = fields.Integer(required=True)


# -- schemas: in -------------------------------------------------------------------------
class ActionIn(Schema):
    by = Text(
        load_default="",
        validate=validate.Length(max=48),
        metadata={
            "description": "the person at the desk, for the timeline, where one account "
            "serves several; the signed-in account is always recorded"
        },
    )


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


class CancelIn(ActionIn):
    reason = Text(load_default="cancelled by dispatch", validate=validate.Length(max=500))
    replace = fields.Boolean(
        load_default=False, metadata={"description": "send the next-best unit in its place"}
    )


class ReassignIn(ActionIn):
    unit_id = Text(required=True, validate=validate.Length(min=1, max=64))
    reason = Text(load_default="", validate=validate.Length(max=500))
    divert = fields.Boolean(load_default=False)


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


class UnitStatusIn(ActionIn):
    status = fields.String(required=True, validate=validate.OneOf(("available", "out_of_service")))


class DutyIn(ActionIn):
    level = fields.String(required=True, validate=validate.OneOf(DUTY_LEVELS))


class RecommendQuery(Schema):
    limit = fields.Integer(load_default=None, validate=validate.Range(1, 50))


class IncidentQuery(Schema):
    state = fields.String(validate=validate.OneOf((*INCIDENT_STATES, "open")))
    limit = fields.Integer(load_default=200, validate=validate.Range(1, 1000))


# -- helpers -----------------------------------------------------------------------------
def runtime():
    return current_app.extensions["fieldlink"]


def in_worker(fn, *args: Any, **kwargs: Any) -> Any:
    """Run a change in the worker; its refusal becomes the HTTP answer."""
    try:
        return runtime().pipeline.call(fn, *args, **kwargs)
    except OrderRefused as exc:
        metrics.REJECTED.labels("rest", "refused").inc()
        abort(exc.status, message=str(exc))
    except TimeoutError as exc:
        abort(503, message=str(exc))


def actor(body: dict) -> str:
    """Who does it, for the timeline: the signed-in account, and the person at its desk
    where one account serves several (`by`)."""
    user = auth.who()
    by = body.pop("by", "")
    return (f"{user.actor}/{by}" if by and by != user.name else user.actor)[:64]


def incident_detail(incident: Incident) -> dict[str, Any]:
    with db.connection_context():
        orders = incident.orders.order_by(Order.sent_at)
        return {**incident_public(incident), "orders": [order_public(o) for o in orders]}


def orders_service():
    return runtime().orders


# -- units -------------------------------------------------------------------------------
@blp.route("/units")
class Units(MethodView):
    @blp.response(200, UnitOut(many=True))
    def get(self):
        """Every unit with its status (and since when) and latest position."""
        return sorted((u.public() for u in runtime().live.units.values()), key=lambda u: u["id"])


@blp.route("/units/<unit_id>")
class UnitDetail(MethodView):
    @blp.response(200, UnitOut)
    def get(self, unit_id: str):
        unit = runtime().live.get(unit_id)
        if unit is None:
            abort(404, message=f"no unit {unit_id!r}")
        return unit.public()


@blp.route("/units/<unit_id>/status")
class UnitStatus(MethodView):
    @blp.arguments(UnitStatusIn())
    @blp.response(200, UnitOut)
    def put(self, body: dict, unit_id: str):
        """Take a unit out of service or back; while out it is not recommended."""
        out = body["status"] == "out_of_service"
        who = actor(body)
        unit = in_worker(orders_service().set_out_of_service, unit_id, out, who)
        return unit.public()


# -- incidents ---------------------------------------------------------------------------
@blp.route("/incidents")
class Incidents(MethodView):
    @blp.arguments(IncidentQuery(), location="query")
    @blp.response(200, IncidentOut(many=True))
    def get(self, query: dict):
        """Incidents, newest first; `state=open` for those not closed."""
        with db.connection_context():
            rows = Incident.select().order_by(Incident.created_at.desc())
            if query.get("state") == "open":
                rows = rows.where(Incident.state != "closed")
            elif query.get("state"):
                rows = rows.where(Incident.state == query["state"])
            return [incident_public(i) for i in rows.limit(query["limit"])]

    @blp.arguments(IncidentIn())
    @blp.response(201, IncidentDetailOut)
    def post(self, body: dict):
        """A new incident (its grid found by point in polygon); `apply_plan` sends its units."""
        who = actor(body)
        incident = in_worker(orders_service().create_incident, body, who)
        return incident_detail(incident)


@blp.route("/incidents/<incident_id>")
class IncidentDetail(MethodView):
    @blp.response(200, IncidentDetailOut)
    def get(self, incident_id: str):
        """One incident with its orders and the time of every step."""
        with db.connection_context():
            incident = Incident.get_or_none(Incident.id == incident_id)
            if incident is None:
                abort(404, message=f"no incident {incident_id!r}")
            return incident_detail(incident)

    @blp.arguments(IncidentPatch())
    @blp.response(200, IncidentDetailOut)
    def patch(self, body: dict, incident_id: str):
        """Change what is known; the units on it get an order of kind `update`."""
        who = actor(body)
        return incident_detail(in_worker(orders_service().update_incident, incident_id, body, who))


def _incident_action(
    path: str, schema: type[Schema], method: str, field: str | None, doc: str, status: int = 200
):
    """A POST on an incident that runs one OrderService method with one field of the body
    (or, with `field` None, all of it)."""

    def view(body: dict, incident_id: str):
        who = actor(body)
        given = body if field is None else body[field]
        incident = in_worker(getattr(orders_service(), method), incident_id, given, who)
        return incident_detail(incident)

    view.__doc__ = doc
    view.__name__ = f"incident_{method}"
    blp.route(f"/incidents/<incident_id>/{path}", methods=["POST"])(
        blp.arguments(schema())(blp.response(status, IncidentDetailOut)(view))
    )


_incident_action(
    "notes", NoteIn, "add_note", "text", "Add a note; the units on it get an update.", 201
)
_incident_action(
    "plan",
    ActionIn,
    "send_plan",
    None,
    "Send the response plan's units (for an incident entered without `apply_plan`).",
)
_incident_action("resolve", ResolveIn, "resolve", "note", "Resolved: handled on scene or by phone.")
_incident_action(
    "close", CloseIn, "close", "disposition", "Close with a disposition; open orders are cancelled."
)


_incident_action(
    "handover",
    HandoverIn,
    "hand_over",
    None,
    "Hand over to a department or another unit (scene, station, station to police station).",
)
_incident_action(
    "followup", FollowupIn, "record_followup", None, "Record the same-day call back to the caller."
)


@blp.route("/incidents/<incident_id>/recommendations")
@blp.arguments(RecommendQuery(), location="query")
@blp.response(200, RecommendationsOut)
def recommendations(query: dict, incident_id: str):
    """Available units ranked by estimated arrival, and the nearer ones passed over, with why.

    With `FIELDLINK_OSRM_URL`, one OSRM table request re-ranks them by drive time; if it
    fails, the straight-line estimate stands and `routing.error` says why.
    """
    rt = runtime()
    limit = query["limit"] or rt.settings.recommend_limit
    wanted = max(limit, rt.settings.osrm_shortlist) if rt.router else limit
    incident, recs = in_worker(rt.orders.recommend_for, incident_id, wanted)
    legs, error = rt.drive_times((incident.lat, incident.lon), recs)
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
        orders_service().dispatch_units, incident_id, body["unit_ids"], who, body["divert"]
    )
    return [order_public(o) for o in orders]


@blp.route("/incidents/<incident_id>/timeline")
@blp.response(200, EventOut(many=True))
def timeline(incident_id: str):
    """Everything that happened to the incident, who did it and when, oldest first."""
    with db.connection_context():
        try:
            return orders_service().timeline(incident_id)
        except OrderRefused as exc:
            abort(exc.status, message=str(exc))


# -- orders ------------------------------------------------------------------------------
@blp.route("/orders/<order_id>/cancel", methods=["POST"])
@blp.arguments(CancelIn())
@blp.response(200, OrderOut)
def cancel(body: dict, order_id: str):
    """Take an order back; the unit gets an order of kind `cancel`."""
    who = actor(body)
    order = in_worker(orders_service().cancel_order, order_id, body["reason"], who, body["replace"])
    return order_public(order)


@blp.route("/orders/<order_id>/reassign", methods=["POST"])
@blp.arguments(ReassignIn())
@blp.response(201, OrderOut)
def reassign(body: dict, order_id: str):
    """Give the order's incident to another unit: `cancel` to this one, a new order to that."""
    who = actor(body)
    order = in_worker(
        orders_service().reassign_order,
        order_id,
        body["unit_id"],
        body["reason"],
        who,
        body["divert"],
    )
    return order_public(order)


# -- alarms ------------------------------------------------------------------------------
class AlarmOut(Schema):
    id = fields.Integer(required=True, metadata={"description": "the server's id of the press"})
    alarm_id = fields.String(required=True, metadata={"description": "the unit's own id"})
    unit_id = fields.String(required=True)
    kind = fields.String(validate=validate.OneOf(("panic", "test")))
    ts = fields.Float(metadata={"description": "when it was pressed"})
    received_at = fields.Float()
    incident_id = fields.String(allow_none=True)
    presses = fields.Integer(allow_none=True, metadata={"description": "of its unit's call"})
    location_source = fields.String(allow_none=True)
    lat = fields.Float(allow_none=True)
    lon = fields.Float(allow_none=True)
    acknowledged_at = fields.Float(allow_none=True)
    acknowledged_by = fields.String(allow_none=True)
    escalated_at = fields.Float(
        allow_none=True, metadata={"description": "sent on to the commanders: not heard in time"}
    )


class AlarmAckIn(ActionIn):
    ids = fields.List(
        fields.Integer(validate=validate.Range(1, 2**53)),
        required=True,
        validate=validate.Length(min=1, max=500),
    )


@blp.route("/alarms")
@blp.response(200, AlarmOut(many=True))
def alarms():
    """Alarms no dispatcher has acknowledged yet, oldest first: they ring on every console."""
    with db.connection_context():
        return orders_service().unacknowledged_alarms()


@blp.route("/alarms/acknowledge", methods=["POST"])
@blp.arguments(AlarmAckIn())
@blp.response(200, AlarmOut(many=True))
def acknowledge_alarms(body: dict):
    """Acknowledge alarms: every console falls silent for them; the timeline says who, when."""
    who = actor(body)
    return in_worker(orders_service().acknowledge_alarms, body["ids"], who)


# -- duty level, plans, grids, posts -----------------------------------------------------
@blp.route("/duty")
class Duty(MethodView):
    @blp.response(200, DutyOut)
    def get(self):
        """The commander's duty level: normal, reinforced or wartime."""
        return {"level": orders_service().duty_level}

    @blp.arguments(DutyIn())
    @blp.response(200, DutyOut)
    def put(self, body: dict):
        """Change the duty level: new incidents get its plans and ack timeouts."""
        who = actor(body)
        return {"level": in_worker(orders_service().set_duty_level, body["level"], who)}


class PlansOut(Schema):
    categories = fields.List(fields.String())
    duty_level = fields.String(validate=validate.OneOf(DUTY_LEVELS))
    duty_levels = fields.Dict(
        keys=fields.String(),
        metadata={"description": "per level: ack_timeout_s per priority, and its plans"},
    )


@blp.route("/plans")
@blp.response(200, PlansOut)
def plans():
    """Response plans per duty level: units per category and priority, ack timeouts."""
    rt = runtime()
    return {**rt.plans.public(rt.settings.categories()), "duty_level": rt.orders.duty_level}


def _geojson_in(parse, body: dict):
    try:
        return parse(body)
    except GeoError as exc:
        metrics.REJECTED.labels("rest", "geojson").inc()
        abort(422, message=str(exc))


@blp.route("/grids")
class Grids(MethodView):
    @blp.response(200, GeoJsonCollection)
    def get(self):
        """The response grids as GeoJSON, each with its neighbours."""
        return orders_service().grids.to_geojson()

    @blp.arguments(GeoJsonCollection())
    @blp.response(200, ImportOut)
    def put(self, body: dict):
        """Replace every grid (a FeatureCollection of polygons with properties.id)."""
        shapes = _geojson_in(parse_grids, body)
        grid_map = GridMap(shapes)
        with db.connection_context():
            count = save_grids(shapes)
        in_worker(orders_service().use_grids, grid_map)
        return {"imported": count}


@blp.route("/posts")
class Posts(MethodView):
    @blp.response(200, GeoJsonCollection)
    def get(self):
        """The 1/3/5-minute response posts as GeoJSON points."""
        with db.connection_context():
            return posts_geojson(load_posts())

    @blp.arguments(GeoJsonCollection())
    @blp.response(200, ImportOut)
    def put(self, body: dict):
        """Replace every response post (points with properties.id and tier_min 1, 3 or 5)."""
        posts = assign_post_grids(_geojson_in(parse_posts, body), orders_service().grids)
        with db.connection_context():
            count = save_posts(posts)
        in_worker(orders_service().use_posts, posts)
        return {"imported": count}


# -- response figures --------------------------------------------------------------------
class PeriodQuery(Schema):
    since = fields.Float(
        validate=validate.Range(0, 1e11),
        metadata={"description": "from (epoch s); default: the command centre's day start"},
    )
    until = fields.Float(
        validate=validate.Range(0, 1e11), metadata={"description": "until (epoch s); now"}
    )


class KpiQuery(PeriodQuery):
    group_by = fields.String(validate=validate.OneOf(GROUPS))
    days = fields.Integer(
        validate=validate.Range(1, 366),
        metadata={
            "description": "without `since`: the command centre's last N days, today included "
            "(its time zone, FIELDLINK_TIMEZONE, not the browser's)"
        },
    )


class DurationOut(Schema):
    n = fields.Integer()
    mean_s = fields.Float(allow_none=True)
    median_s = fields.Float(allow_none=True)
    p90_s = fields.Float(allow_none=True)


class ShareOut(Schema):
    n = fields.Integer(metadata={"description": "incidents the rate is over"})
    rate = fields.Float(allow_none=True)


class FiguresOut(Schema):
    incidents = fields.Integer()
    call_to_dispatch = fields.Nested(DurationOut)
    dispatch_to_acknowledge = fields.Nested(DurationOut)
    dispatch_to_arrival = fields.Nested(DurationOut)
    arrived_within = fields.Dict(keys=fields.String(), values=fields.Nested(ShareOut))
    first_response_rate = fields.Nested(ShareOut)
    on_scene_resolution_rate = fields.Nested(ShareOut)
    same_day_closure_rate = fields.Nested(ShareOut)
    followups_done = fields.Nested(ShareOut)


class HistogramOut(Schema):
    bin_s = fields.Integer()
    counts = fields.List(fields.Integer(), metadata={"description": "arrivals per bin"})
    over = fields.Integer(metadata={"description": "arrivals after the last bin"})


class DayOut(Schema):
    date = fields.String()
    incidents = fields.Integer()
    median_arrival_s = fields.Float(allow_none=True)
    within_5min = fields.Float(allow_none=True)


class KpisOut(Schema):
    since = fields.Float()
    until = fields.Float()
    timezone = fields.String()
    all = fields.Nested(FiguresOut)
    arrival_histogram = fields.Nested(HistogramOut)
    daily = fields.List(fields.Nested(DayOut))
    groups = fields.Dict(keys=fields.String(), values=fields.Nested(FiguresOut))


@blp.route("/kpis")
@blp.arguments(KpiQuery(), location="query")
@blp.response(200, KpisOut)
def kpis(query: dict):
    """Response figures for incidents created in a period, overall and per grid, category or
    responding unit kind: call to dispatch, dispatch to acknowledge and to arrival (mean,
    median, 90th percentile), arrived within 1/3/5 minutes, first response, on-scene
    resolution, same-day closure, follow-ups done."""
    tz = ZoneInfo(runtime().settings.timezone)
    since, until = _period(query, tz)
    with db.connection_context():
        records = incident_records(since, until)
    figures = kpis_by(records, query.get("group_by"), tz)
    return {"since": since, "until": until, "timezone": tz.key, **figures}


def _period(query: dict, tz: ZoneInfo) -> tuple[float, float]:
    """`since`/`until` from the query; by default the command centre's day so far, or its
    last `days` days."""
    now = clock.now()
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=query.get("days", 1) - 1)
    return query.get("since", first.timestamp()), query.get("until", now)


def _track(unit_id: str, query: dict) -> tuple[Any, list[dict], tuple[float, float]]:
    """The unit, its fixes over the query's period, and that period."""
    rt = runtime()
    unit = rt.live.get(unit_id)
    if unit is None:
        abort(404, message=f"no unit {unit_id!r}")
    period = _period(query, ZoneInfo(rt.settings.timezone))
    with db.connection_context():
        return unit, unit_track(unit_id, *period), period


class PatrolQuery(PeriodQuery):
    stop_min = fields.Float(
        load_default=5.0,
        validate=validate.Range(0.5, 600),
        metadata={"description": "report stops at least this many minutes long"},
    )


class StopOut(Schema):
    from_ = fields.Float(data_key="from", attribute="from")
    to = fields.Float()
    minutes = fields.Float()
    lat = fields.Float()
    lon = fields.Float()


class PatrolOut(Schema):
    unit_id = fields.String()
    home_grid = fields.String(allow_none=True)
    since = fields.Float()
    until = fields.Float()
    fixes = fields.Integer()
    outliers = fields.Integer(metadata={"description": "fixes dropped as impossible jumps"})
    km = fields.Float(metadata={"description": "driven, GPS jitter filtered"})
    moving_s = fields.Float()
    stationary_s = fields.Float()
    no_data_s = fields.Float()
    in_home_grid_s = fields.Float()
    in_home_grid_share = fields.Float(allow_none=True)
    stops = fields.List(fields.Nested(StopOut))


@blp.route("/units/<unit_id>/patrol")
@blp.arguments(PatrolQuery(), location="query")
@blp.response(200, PatrolOut)
def patrol(query: dict, unit_id: str):
    """Patrol quality of a unit over a shift: kilometres, moving and stationary time, time in
    its home grid, stops longer than `stop_min` minutes."""
    unit, track, (since, until) = _track(unit_id, query)
    rules = PatrolRules(stop_min_s=query["stop_min"] * 60)
    home = unit.grid or None
    report = patrol_report(track, runtime().orders.grids.grid_at, home, rules)
    return {
        "unit_id": unit_id,
        "home_grid": home,
        "since": since,
        "until": until,
        **report.public(),
    }


class CoverageQuery(Schema):
    cell_m = fields.Float(load_default=250.0, validate=validate.Range(50, 5000))


class CoverageOut(Schema):
    cell_m = fields.Float()
    reach_s = fields.Float()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    type = fields.String()
    features = fields.List(fields.Dict())


@blp.route("/coverage")
@blp.arguments(CoverageQuery(), location="query")
@blp.response(200, CoverageOut)
def coverage_map(query: dict):
    """Cold spots now: cells over the grids (or the units) coloured by how fast an available
    unit could get there: green within 3 minutes, blue within 5, red beyond, black none in
    reach (`FIELDLINK_COVERAGE_REACH_S`)."""
    rt = runtime()
    cell_map = in_worker(rt.orders.coverage, query["cell_m"])
    return {
        "cell_m": query["cell_m"],
        "reach_s": rt.settings.coverage_reach_s,
        "counts": summary(cell_map),
        "type": "FeatureCollection",
        "features": [c.feature() for c in cell_map],
    }


# -- exports and replay ------------------------------------------------------------------
@blp.route("/units/<unit_id>/track")
@blp.arguments(PeriodQuery(), location="query")
@blp.response(200, GeoJsonCollection)
def track(query: dict, unit_id: str):
    """A unit's track for a period, to replay on the map: a GeoJSON LineString with the time
    of each point (`properties.times`). `/track.gpx` gives the same as GPX."""
    _, fixes, _ = _track(unit_id, query)
    return track_geojson(unit_id, fixes)


def _query(schema: type[Schema]) -> dict:
    """Query arguments of a plain (non-JSON) route, refused as the JSON routes refuse them."""
    try:
        return schema().load(request.args)
    except ValidationError as exc:
        metrics.REJECTED.labels("rest", "invalid").inc()
        abort(422, errors={"query": exc.messages}, message="invalid query arguments")


def _download(text: str, mimetype: str, filename: str) -> Response:
    return Response(
        text, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}"}
    )


def track_gpx_view(unit_id: str) -> Response:
    unit, fixes, _ = _track(unit_id, _query(PeriodQuery))
    return _download(track_gpx(unit_id, unit.name, fixes), "application/gpx+xml", f"{unit_id}.gpx")


def incidents_csv_view() -> Response:
    query = _query(PeriodQuery)
    since, until = _period(query, ZoneInfo(runtime().settings.timezone))
    with db.connection_context():
        rows = Incident.select().where(
            (Incident.created_at >= since) & (Incident.created_at < until)
        )
        text = incidents_csv(incident_public(i) for i in rows.order_by(Incident.created_at))
    return _download(text, "text/csv", "incidents.csv")


def kpis_csv_view() -> Response:
    query = _query(KpiQuery)
    tz = ZoneInfo(runtime().settings.timezone)
    since, until = _period(query, tz)
    with db.connection_context():
        records = incident_records(since, until)
    return _download(kpis_csv(kpis_by(records, query.get("group_by"), tz)), "text/csv", "kpis.csv")


def metrics_view():
    return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def health_view():
    """Not ok while the runtime is stopped or one of its loops has made no progress for its
    stall time (a worker that stopped, a store that is away)."""
    rt = runtime()
    stalled = [stage.name for stage in rt.stages if stage.stalled()]
    ok = rt.running and not stalled
    body = {
        "ok": ok,
        "broker": rt.ingest.connected,
        "units": len(rt.live.units),
        "instance": rt.instance_id,
        "runs_timers": rt.runs_timers,
        "stalled": stalled,
        "stages": {stage.name: round(stage.silent_s(), 1) for stage in rt.stages},
    }
    return body, 200 if ok else 503


def init_app(app: Flask) -> None:
    # every operation needs an account (server/auth.py); the document says how to send it
    app.config["API_SPEC_OPTIONS"] = {"security": [{"bearer": []}, {"session": []}]}
    api = Api(app)
    api.spec.components.security_scheme(
        "bearer",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An account's API token (`fieldlink users add NAME --role R`).",
        },
    )
    api.spec.components.security_scheme(
        "session",
        {
            "type": "apiKey",
            "in": "cookie",
            "name": "session",
            "description": "The web login's session; a change also needs the page's "
            "X-CSRFToken header.",
        },
    )
    api.register_blueprint(blp)
    app.add_url_rule("/api/v1/units/<unit_id>/track.gpx", view_func=track_gpx_view)
    app.add_url_rule("/api/v1/incidents.csv", view_func=incidents_csv_view)
    app.add_url_rule("/api/v1/kpis.csv", view_func=kpis_csv_view)
    app.add_url_rule("/metrics", view_func=metrics_view)
    app.add_url_rule("/healthz", view_func=health_view)
    app.json.sort_keys = False
