"""REST API `/api/v1`: one blueprint per area (units, incidents, orders, alarms, alerts,
command, geo, figures), with the schemas of each beside its views.

Schemas are marshmallow, and flask-smorest turns them into the OpenAPI document at
`/api/v1/openapi.json`. Errors are JSON: `{"code", "status", "message"}`, and a refused
command adds `reason` and `params` (`server/rules/refusals.py`), which a screen words in its
own language. Reads of the store happen in the request; every change runs in the ingest
worker (`common.in_worker`), in order with the units' acks and positions. Argument schemas
are given as instances: from a class, webargs would build a schema for every request.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from flask_smorest.error_handler import ErrorSchema
from marshmallow import fields

from server.web.api import (
    alarms,
    alerts,
    command,
    common,
    figures,
    geo,
    incidents,
    ops,
    orders,
    units,
)
from server.web.api.statuses import EveryStatus

AREAS = (units, incidents, orders, alarms, alerts, command, geo, figures)


class RefusalSchema(ErrorSchema):
    reason = fields.String(metadata={"description": "The refusal's code"})
    params = fields.Dict(metadata={"description": "The values its wording names"})


class FieldlinkApi(Api):
    """flask-smorest's API whose error answers also carry a refusal's code and parameters."""

    ERROR_SCHEMA = RefusalSchema

    def handle_http_exception(self, error: Any) -> Any:
        payload, status, headers = super().handle_http_exception(error)
        data = getattr(error, "data", None) or {}
        payload.update({k: data[k] for k in ("reason", "params") if k in data})
        return payload, status, headers


def init_app(app: Flask) -> None:
    # every operation needs an account (server/web/auth.py); the document says how to send it
    app.config["API_SPEC_OPTIONS"] = {"security": [{"bearer": []}, {"session": []}]}
    app.config["MAX_CONTENT_LENGTH"] = common.MAX_BODY_BYTES
    api = FieldlinkApi(app, spec_kwargs={"extra_plugins": [EveryStatus()]})
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
    for area in AREAS:
        api.register_blueprint(area.blp)
    app.add_url_rule("/api/v1/units/<unit_id>/track.gpx", view_func=units.track_gpx_view)
    app.add_url_rule("/api/v1/incidents.csv", view_func=figures.incidents_csv_view)
    app.add_url_rule("/api/v1/kpis.csv", view_func=figures.kpis_csv_view)
    app.add_url_rule("/api/v1/patrol.csv", view_func=units.patrol_csv_view)
    app.add_url_rule("/metrics", view_func=ops.metrics_view)
    app.add_url_rule("/healthz", view_func=ops.health_view)
    assert isinstance(app.json, DefaultJSONProvider)  # Flask's own, the one with sort_keys
    app.json.sort_keys = False
