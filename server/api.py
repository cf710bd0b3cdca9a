"""REST API, read side: `/api/v1/units`, `/api/v1/incidents`, `/api/v1/incidents/{id}`.

Schemas are marshmallow, and flask-smorest turns them into the OpenAPI document at
`/api/v1/openapi.json`. Errors are JSON: `{"code", "status", "message"}`.
"""

from __future__ import annotations

from flask import Flask, current_app
from flask.views import MethodView
from flask_smorest import Api, Blueprint, abort
from marshmallow import Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.orders import ORDER_TIMESTAMPS, incident_public, order_public
from server.store import Incident, Order, db

blp = Blueprint("v1", __name__, url_prefix="/api/v1", description="Units, incidents, orders")


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
    status = fields.String(required=True)
    status_since = fields.Float()
    online = fields.Boolean()
    position = fields.Nested(FixOut, allow_none=True)


class LocationOut(Schema):
    lat = fields.Float(allow_none=True)
    lon = fields.Float(allow_none=True)
    address = fields.String()


OrderOut = Schema.from_dict(
    {
        "order_id": fields.String(required=True),
        "incident_id": fields.String(required=True),
        "unit_id": fields.String(required=True),
        "kind": fields.String(),
        "state": fields.String(required=True),
        "decline_reason": fields.String(),
        **{f"{step}_at": fields.Float(allow_none=True) for step in ORDER_TIMESTAMPS},
    },
    name="Order",
)


class IncidentOut(Schema):
    id = fields.String(required=True)
    category = fields.String(required=True)
    priority = fields.Integer(required=True)
    state = fields.String(required=True)
    location = fields.Nested(LocationOut)
    summary = fields.String()
    reported_by = fields.String(allow_none=True)
    created_at = fields.Float()
    dispatched_at = fields.Float(allow_none=True)
    on_scene_at = fields.Float(allow_none=True)
    resolved_at = fields.Float(allow_none=True)
    closed_at = fields.Float(allow_none=True)


class IncidentDetailOut(IncidentOut):
    orders = fields.List(fields.Nested(OrderOut))


@blp.route("/units")
class Units(MethodView):
    @blp.response(200, UnitOut(many=True))
    def get(self):
        """Every unit with its status and latest position."""
        live = current_app.extensions["fieldlink"].live
        return sorted((u.public() for u in live.units.values()), key=lambda u: u["id"])


@blp.route("/incidents")
class Incidents(MethodView):
    @blp.response(200, IncidentOut(many=True))
    def get(self):
        """Incidents, newest first."""
        with db.connection_context():
            return [
                incident_public(i)
                for i in Incident.select().order_by(Incident.created_at.desc()).limit(500)
            ]


@blp.route("/incidents/<incident_id>")
class IncidentDetail(MethodView):
    @blp.response(200, IncidentDetailOut)
    def get(self, incident_id: str):
        """One incident with its orders and the time of every step."""
        with db.connection_context():
            incident = Incident.get_or_none(Incident.id == incident_id)
            if incident is None:
                abort(404, message=f"no incident {incident_id!r}")
            orders = incident.orders.order_by(Order.sent_at)
            return {**incident_public(incident), "orders": [order_public(o) for o in orders]}


def metrics_view():
    return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def health_view():
    runtime = current_app.extensions["fieldlink"]
    ok = runtime.running
    body = {"ok": ok, "broker": runtime.ingest.connected, "units": len(runtime.live.units)}
    return body, 200 if ok else 503


def init_app(app: Flask) -> None:
    api = Api(app)
    api.register_blueprint(blp)
    app.add_url_rule("/metrics", view_func=metrics_view)
    app.add_url_rule("/healthz", view_func=health_view)
