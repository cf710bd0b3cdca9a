"""Orders: taken back from a unit, or given to another."""

from __future__ import annotations

from marshmallow import fields, validate

from server.orders import dispatching, views
from server.web.api.common import ActionIn, actor, area, book, in_worker
from server.web.api.incidents import OrderOut
from wire import Text

blp = area("orders", "Orders: cancel, reassign")


class CancelIn(ActionIn):
    reason = Text(load_default="cancelled by dispatch", validate=validate.Length(max=500))
    replace = fields.Boolean(
        load_default=False, metadata={"description": "send the next-best unit in its place"}
    )


class ReassignIn(ActionIn):
    unit_id = Text(required=True, validate=validate.Length(min=1, max=64))
    reason = Text(load_default="", validate=validate.Length(max=500))
    divert = fields.Boolean(load_default=False)


@blp.route("/orders/<order_id>/cancel", methods=["POST"])
@blp.arguments(CancelIn())
@blp.response(200, OrderOut)
def cancel(body: dict, order_id: str):
    """Take an order back; the unit gets an order of kind `cancel`."""
    who = actor(body)
    order = in_worker(
        dispatching.cancel_order, book(), order_id, body["reason"], who, body["replace"]
    )
    return views.order_public(order)


@blp.route("/orders/<order_id>/reassign", methods=["POST"])
@blp.arguments(ReassignIn())
@blp.response(201, OrderOut)
def reassign(body: dict, order_id: str):
    """Give the order's incident to another unit: `cancel` to this one, a new order to that."""
    who = actor(body)
    order = in_worker(
        dispatching.reassign_order,
        book(),
        order_id,
        body["unit_id"],
        body["reason"],
        who,
        body["divert"],
    )
    return views.order_public(order)
