"""Alarms: those still ringing on the consoles, and a dispatcher's acknowledgement."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from server.orders import alarms, views
from server.store import db
from server.web.api.common import ActionIn, actor, area, book, in_worker

blp = area("alarms", "Alarms: ringing until a dispatcher acknowledges them")


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
def ringing():
    """Alarms no dispatcher has acknowledged yet, oldest first: they ring on every console."""
    with db.connection_context():
        return views.unacknowledged_alarms()


@blp.route("/alarms/acknowledge", methods=["POST"])
@blp.arguments(AlarmAckIn())
@blp.response(200, AlarmOut(many=True))
def acknowledge(body: dict):
    """Acknowledge alarms: every console falls silent for them; the timeline says who, when."""
    who = actor(body)
    return in_worker(alarms.acknowledge, book(), body["ids"], who)
