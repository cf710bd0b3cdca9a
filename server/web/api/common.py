"""What every area of the REST API shares: the runtime, changes run in the worker, who
acts, the areas' blueprints, periods of time, downloads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, request
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from server.orders import OrderBook, OrderRefused
from server.rules.refusals import Refusal
from server.runtime import clock, metrics
from server.web import auth
from wire import Text, WireError, parse_json, unwritable

# The largest body a request may send, as the nginx recipe's client_max_body_size (a grid
# file of a whole city); Flask refuses a longer one with 413 before reading it.
MAX_BODY_BYTES = 10 * 1024 * 1024


def runtime() -> Any:
    return current_app.extensions["fieldlink"]


def book() -> OrderBook:
    return runtime().book


class BodyParser(FlaskParser):
    """JSON bodies by the rules the units' messages keep (wire.parse_json): the size limit,
    16 levels of nesting, numbers of at most 40 characters, no NaN or infinity, UTF-8 without
    a BOM. Each refusal is a 400 that says why; json.loads would have let a deep array or a
    5,000-digit number escape as a 500."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            return core.missing
        body = req.get_data(cache=True)
        if not body:
            return core.missing
        try:
            return parse_json(body, MAX_BODY_BYTES)
        except WireError as exc:
            metrics.REJECTED.labels("rest", "body").inc()
            abort(400, messages={"json": [f"Invalid JSON body: {exc}"]})


class AreaBlueprint(Blueprint):
    ARGUMENTS_PARSER = BodyParser()


def area(name: str, description: str) -> Blueprint:
    """One area's blueprint under /api/v1 (a tag of its own in the OpenAPI document)."""
    blp = AreaBlueprint(name, __name__, url_prefix="/api/v1", description=description)
    blp.before_request(plain_path_ids)
    return blp


def plain_path_ids() -> None:
    """An id in the path holding a control character names nothing (PostgreSQL refuses NUL)."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (problem := unwritable(value)):
            abort(404, message=f"no such {name.removesuffix('_id')}: {problem}")


def refuse(status: int, reason: Refusal) -> None:
    """The HTTP answer to a refusal: its English text, and its code for screens to word."""
    abort(status, message=str(reason), **reason.public())


def refused(exc: OrderRefused) -> None:
    refuse(exc.status, exc.refusal)


def in_worker(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a change in the worker; its refusal becomes the HTTP answer."""
    try:
        return runtime().pipeline.call(fn, *args, **kwargs)
    except OrderRefused as exc:
        metrics.REJECTED.labels("rest", "refused").inc()
        refused(exc)
    except TimeoutError as exc:
        abort(503, message=str(exc))


def actor(body: dict) -> str:
    """Who does it, for the timeline: the signed-in account, and the person at its desk
    where one account serves several (`by`)."""
    user = auth.who()
    assert user is not None  # auth.guard() lets only the signed in through
    by = body.pop("by", "")
    return (f"{user.actor}/{by}" if by and by != user.name else user.actor)[:64]


class ActionIn(Schema):
    by = Text(
        load_default="",
        validate=validate.Length(max=48),
        metadata={
            "description": "the person at the desk, for the timeline, where one account "
            "serves several; the signed-in account is always recorded"
        },
    )


class OfficerOut(Schema):
    id = fields.String(required=True, metadata={"description": "badge number"})
    name = fields.String(required=True)


def crew_field(what: str) -> fields.List[Any]:
    return fields.List(
        fields.Nested(OfficerOut), metadata={"description": f"{what}, the one in charge first"}
    )


class GeoJsonCollection(Schema):
    """A GeoJSON FeatureCollection (RFC 7946)."""

    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    features = fields.List(fields.Dict(), required=True)


class PeriodQuery(Schema):
    since = fields.Float(
        validate=validate.Range(0, 1e11),
        metadata={"description": "from (epoch s); default: the command centre's day start"},
    )
    until = fields.Float(
        validate=validate.Range(0, 1e11), metadata={"description": "until (epoch s); now"}
    )


def period(query: dict, tz: ZoneInfo) -> tuple[float, float]:
    """`since`/`until` from the query; by default the command centre's day so far, or its
    last `days` days."""
    now = clock.now()
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=query.get("days", 1) - 1)
    return query.get("since", first.timestamp()), query.get("until", now)


def plain_query(schema: type[Schema]) -> dict:
    """Query arguments of a plain (non-JSON) route, refused as the JSON routes refuse them."""
    try:
        query: dict[str, Any] = schema().load(request.args)
    except ValidationError as exc:
        metrics.REJECTED.labels("rest", "invalid").inc()
        abort(422, errors={"query": exc.messages}, message="invalid query arguments")
    return query


def download(text: str, mimetype: str, filename: str) -> Response:
    return Response(
        text, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}"}
    )
