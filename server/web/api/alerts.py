"""Alerts: the list every console works through, until a dispatcher acknowledges each."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from server.orders import alerts
from server.store import db
from server.web.api.common import ActionIn, actor, area, book, in_worker

blp = area(
    "alerts",
    "Alerts: no unit, no location, orders not accepted, alarms not heard, units silent"
    " or long on scene",
)

KINDS = (
    "no_unit",
    "no_location",
    "escalation",
    "alarm_unacknowledged",
    "unit_silent",
    "on_scene_long",
)


class AlertOut(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": f"one of {', '.join(KINDS)}"})
    incident_id = fields.String(allow_none=True)
    unit_id = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True)
    message = fields.String(metadata={"description": "the server's words (English)"})
    refs = fields.Dict(metadata={"description": "what a console words it from, per kind"})
    raised_at = fields.Float()
    acknowledged_at = fields.Float(allow_none=True)
    acknowledged_by = fields.String(allow_none=True)


class AlertAckIn(ActionIn):
    ids = fields.List(
        fields.Integer(validate=validate.Range(1, 2**53)),
        required=True,
        validate=validate.Length(min=1, max=500),
    )


@blp.route("/alerts")
@blp.response(200, AlertOut(many=True))
def open_ones():
    """Alerts no dispatcher has acknowledged, oldest first (the newest 500)."""
    with db.connection_context():
        return alerts.open_alerts()


@blp.route("/alerts/acknowledge", methods=["POST"])
@blp.arguments(AlertAckIn())
@blp.response(200, AlertOut(many=True))
def acknowledge(body: dict):
    """Acknowledge alerts: they leave every console's list; the timeline says who, when."""
    who = actor(body)
    return in_worker(alerts.acknowledge, book(), body["ids"], who)
