"""The command centre's settings: the duty level, and the response plans it picks."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from server.orders import incidents
from server.rules.lifecycle import step_limits
from server.rules.plans import DUTY_LEVELS
from server.web.api.common import ActionIn, actor, area, book, in_worker, runtime

blp = area("command", "The duty level and the response plans")


class DutyOut(Schema):
    level = fields.String(validate=validate.OneOf(DUTY_LEVELS))


class DutyIn(ActionIn):
    level = fields.String(required=True, validate=validate.OneOf(DUTY_LEVELS))


# -- duty level, plans, grids, posts -----------------------------------------------------
@blp.route("/duty")
class Duty(MethodView):
    @blp.response(200, DutyOut)
    def get(self):
        """The commander's duty level: normal, reinforced or wartime."""
        return {"level": book().duty_level}

    @blp.arguments(DutyIn())
    @blp.response(200, DutyOut)
    def put(self, body: dict):
        """Change the duty level: new incidents get its plans and ack timeouts."""
        who = actor(body)
        return {"level": in_worker(incidents.set_duty_level, book(), body["level"], who)}


class PlansOut(Schema):
    categories = fields.List(fields.String())
    category_names = fields.Dict(
        keys=fields.String(),
        metadata={"description": "per category its name by language: {en, zh}"},
    )
    duty_level = fields.String(validate=validate.OneOf(DUTY_LEVELS))
    duty_levels = fields.Dict(
        keys=fields.String(),
        metadata={"description": "per level: ack_timeout_s per priority, and its plans"},
    )
    step_limits_s = fields.Dict(
        metadata={
            "description": "when a step turns amber and red on the consoles: `arrival` "
            "[amber, red] from the call or the order, `on_scene` [amber, red] per category"
        }
    )


@blp.route("/plans")
@blp.response(200, PlansOut)
def plans():
    """Response plans per duty level: units per category and priority, ack timeouts."""
    rt = runtime()
    categories = rt.settings.categories()
    return {
        **rt.plans.public(categories),
        "category_names": rt.settings.names_of_categories(),
        "duty_level": rt.book.duty_level,
        "step_limits_s": step_limits(rt.book.on_scene_limits_s, categories),
    }
