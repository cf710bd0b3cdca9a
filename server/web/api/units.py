"""Units: who is where and doing what, taken out of service and back; a unit's patrol
report and its track for a period."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from server.orders import presence, shifts
from server.rules.export import patrol_csv, track_geojson, track_gpx
from server.rules.lifecycle import UNIT_STATUSES
from server.rules.patrol import (
    PATROLLING,
    PatrolReport,
    PatrolRules,
    patrol_report,
    shift_by_grid,
    shift_by_officer,
)
from server.rules.refusals import refusal
from server.rules.shifts import stints
from server.runtime import clock
from server.store import db, shift_records, unit_track
from server.web.api.common import (
    ActionIn,
    GeoJsonCollection,
    PeriodQuery,
    actor,
    area,
    book,
    crew_field,
    download,
    in_worker,
    period,
    plain_query,
    refuse,
    runtime,
)
from wire.screens import crew_list, load_screen_shift

blp = area("units", "Units: status, position, patrol, tracks")


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
    crew = crew_field("the officers signed on now")


class UnitStatusIn(ActionIn):
    status = fields.String(required=True, validate=validate.OneOf(("available", "out_of_service")))


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
            refuse(404, refusal("no_unit", unit=unit_id))
        return unit.public()


@blp.route("/units/<unit_id>/status")
class UnitStatus(MethodView):
    @blp.arguments(UnitStatusIn())
    @blp.response(200, UnitOut)
    def put(self, body: dict, unit_id: str):
        """Take a unit out of service or back; while out it is not recommended."""
        out = body["status"] == "out_of_service"
        who = actor(body)
        unit = in_worker(presence.set_out_of_service, book(), unit_id, out, who)
        return unit.public()


class CrewIn(ActionIn):
    crew = crew_list(
        metadata={"description": "one to three officers, the one in charge first; [] signs off"}
    )


@blp.route("/units/<unit_id>/crew")
class UnitCrew(MethodView):
    @blp.arguments(CrewIn())
    @blp.response(200, UnitOut)
    def put(self, body: dict, unit_id: str):
        """Sign a crew on to a unit (as its terminal does: a crew reported by radio, a
        terminal that is down) or, with no one, end its shift. An officer still on another
        unit's crew is refused until that one signs off."""
        crew = load_screen_shift({"crew": body["crew"]})
        in_worker(shifts.sign_on, book(), unit_id, crew, actor(body))
        return runtime().live.get(unit_id).public()


class ShiftOut(Schema):
    unit_id = fields.String()
    crew = crew_field("the officers")
    started_at = fields.Float()
    ended_at = fields.Float(allow_none=True, metadata={"description": "null: on shift now"})


@blp.route("/shifts")
@blp.arguments(PeriodQuery(), location="query")
@blp.response(200, ShiftOut(many=True))
def shift_list(query: dict):
    """The crews' shifts that overlap a period, oldest first."""
    since, until = period(query, ZoneInfo(runtime().settings.timezone))
    with db.connection_context():
        records = shift_records(since, until)
    return [
        {**vars(r), "crew": [{"id": oid, "name": name} for oid, name in r.crew]} for r in records
    ]


# -- incidents ---------------------------------------------------------------------------


def _track(unit_id: str, query: dict) -> tuple[Any, list[dict], tuple[float, float]]:
    """The unit, its fixes over the query's period, and that period."""
    rt = runtime()
    unit = rt.live.get(unit_id)
    if unit is None:
        refuse(404, refusal("no_unit", unit=unit_id))
    since_until = period(query, ZoneInfo(rt.settings.timezone))
    with db.connection_context():
        return unit, unit_track(unit_id, *since_until), since_until


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
    return _report(unit, track, since, until, PatrolRules(stop_min_s=query["stop_min"] * 60))[0]


def _report(
    unit: Any, track: list[dict], since: float, until: float, rules: PatrolRules
) -> tuple[dict[str, Any], PatrolReport]:
    """The unit's report as the API shows it, and the report itself."""
    home = unit.grid or None
    report = patrol_report(track, book().grids.grid_at, home, rules)
    shown = {"unit_id": unit.unit_id, "home_grid": home, "since": since, "until": until}
    return {**shown, **report.public()}, report


class PatrolShiftOut(Schema):
    since = fields.Float()
    until = fields.Float()
    units = fields.List(fields.Nested(PatrolOut))
    grids = fields.List(
        fields.Dict(),
        metadata={
            "description": "per home grid: units, km, moving_s, stationary_s, no_data_s, "
            "in_home_grid_s, long_stops"
        },
    )
    officers = fields.List(
        fields.Dict(),
        metadata={
            "description": "per officer (as they signed on): officer, name, units (stretches "
            "on a unit), km, moving_s, stationary_s, no_data_s, in_home_grid_s, long_stops"
        },
    )


def _shift(query: dict) -> dict[str, Any]:
    """Every patrolling unit's report over the period, each home grid's sum of them, and
    each officer's: the units they were on, for the time they were on them."""
    rt = runtime()
    since, until = period(query, ZoneInfo(rt.settings.timezone))
    rules = PatrolRules(stop_min_s=query["stop_min"] * 60)
    patrolling = sorted(
        (u for u in rt.live.units.values() if u.kind in PATROLLING), key=lambda u: u.unit_id
    )
    with db.connection_context():
        tracks = {u.unit_id: unit_track(u.unit_id, since, until) for u in patrolling}
        crews = stints(shift_records(since, until), since, until, clock.now())
        for stint in crews:
            if stint.unit_id not in tracks:
                tracks[stint.unit_id] = unit_track(stint.unit_id, since, until)
    reports = [_report(u, tracks[u.unit_id], since, until, rules) for u in patrolling]
    by_officer = []
    for stint in crews:
        unit = rt.live.get(stint.unit_id)
        if unit is not None:  # a unit since removed keeps its track, not its home grid
            part = [f for f in tracks[stint.unit_id] if stint.since <= f["ts"] < stint.until]
            by_officer.append((stint, _report(unit, part, stint.since, stint.until, rules)[1]))
    return {
        "since": since,
        "until": until,
        "units": [shown for shown, _ in reports],
        "grids": shift_by_grid((shown["home_grid"], report) for shown, report in reports),
        "officers": shift_by_officer(by_officer),
    }


@blp.route("/patrol")
@blp.arguments(PatrolQuery(), location="query")
@blp.response(200, PatrolShiftOut)
def shift(query: dict):
    """A shift's patrol: every patrolling unit's report (as `/units/{id}/patrol`), each home
    grid's (its units added up) and each officer's (the units they were on, while on them)."""
    return _shift(query)


def patrol_csv_view() -> Response:
    report = _shift(plain_query(PatrolQuery))
    csv = patrol_csv(report["units"], report["grids"], report["officers"])
    return download(csv, "text/csv", "patrol.csv")


@blp.route("/units/<unit_id>/track")
@blp.arguments(PeriodQuery(), location="query")
@blp.response(200, GeoJsonCollection)
def track(query: dict, unit_id: str):
    """A unit's track for a period, to replay on the map: a GeoJSON LineString with the time
    of each point (`properties.times`). `/track.gpx` gives the same as GPX."""
    _, fixes, _ = _track(unit_id, query)
    return track_geojson(unit_id, fixes)


def track_gpx_view(unit_id: str) -> Response:
    unit, fixes, _ = _track(unit_id, plain_query(PeriodQuery))
    return download(track_gpx(unit_id, unit.name, fixes), "application/gpx+xml", f"{unit_id}.gpx")
