"""The figures the command centre lives by: response KPIs, cold spots, CSV downloads."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Response
from marshmallow import Schema, fields, validate

from server.orders import views
from server.rules.coverage import summary
from server.rules.export import incidents_csv, kpis_csv
from server.rules.kpis import GROUPS, kpis_by
from server.store import Incident, db, incident_records
from server.web.api.common import (
    PeriodQuery,
    area,
    book,
    download,
    in_worker,
    period,
    plain_query,
    runtime,
)

blp = area("figures", "Response figures and cold spots")


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
    officers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "with group_by=officer: each group's officer's name"},
    )


@blp.route("/kpis")
@blp.arguments(KpiQuery(), location="query")
@blp.response(200, KpisOut)
def kpis(query: dict):
    """Response figures for incidents created in a period, overall and per grid, category,
    responding unit kind or officer: call to dispatch, dispatch to acknowledge and to arrival
    (mean, median, 90th percentile), arrived within 1/3/5 minutes, first response, on-scene
    resolution, same-day closure, follow-ups done. Per officer: the incidents a unit was sent
    to with the officer on its crew."""
    tz = ZoneInfo(runtime().settings.timezone)
    since, until = period(query, tz)
    with db.connection_context():
        records = incident_records(since, until)
    figures = kpis_by(records, query.get("group_by"), tz)
    return {"since": since, "until": until, "timezone": tz.key, **figures}


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
@blp.alt_response(503, schema="Error", description="the server is busy: try again in a moment")
def coverage_map(query: dict):
    """Cold spots now: cells over the grids (or the units) coloured by how fast an available
    unit could get there: green within 3 minutes, blue within 5, red beyond, black none in
    reach (`FIELDLINK_COVERAGE_REACH_S`)."""
    rt = runtime()
    cell_map = in_worker(views.coverage_map, book(), query["cell_m"])
    return {
        "cell_m": query["cell_m"],
        "reach_s": rt.settings.coverage_reach_s,
        "counts": summary(cell_map),
        "type": "FeatureCollection",
        "features": [c.feature() for c in cell_map],
    }


# -- exports and replay ------------------------------------------------------------------


def incidents_csv_view() -> Response:
    query = plain_query(PeriodQuery)
    since, until = period(query, ZoneInfo(runtime().settings.timezone))
    with db.connection_context():
        rows = Incident.select().where(
            (Incident.created_at >= since) & (Incident.created_at < until)
        )
        text = incidents_csv(views.incident_public(i) for i in rows.order_by(Incident.created_at))
    return download(text, "text/csv", "incidents.csv")


def kpis_csv_view() -> Response:
    query = plain_query(KpiQuery)
    tz = ZoneInfo(runtime().settings.timezone)
    since, until = period(query, tz)
    with db.connection_context():
        records = incident_records(since, until)
    return download(kpis_csv(kpis_by(records, query.get("group_by"), tz)), "text/csv", "kpis.csv")
