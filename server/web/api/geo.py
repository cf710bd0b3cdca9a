"""Where the city is divided: the response grids and the 1/3/5-minute posts."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from server.rules.geo import (
    GeoError,
    GridMap,
    assign_post_grids,
    parse_grids,
    parse_posts,
    posts_geojson,
)
from server.runtime import metrics
from server.store import (
    db,
    load_posts,
    save_grids,
    save_posts,
    street_map_bounds,
    street_map_in,
)
from server.web.api.common import GeoJsonCollection, area, book, in_worker

blp = area("geo", "Response grids and posts, the street map")
# the most features one answer carries: a console's view of a city's centre at zoom 16
MAP_FEATURES = 6000


class ImportOut(Schema):
    imported = fields.Integer(required=True)


# -- schemas: in -------------------------------------------------------------------------


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
        return book().grids.to_geojson()

    @blp.arguments(GeoJsonCollection())
    @blp.response(200, ImportOut)
    def put(self, body: dict):
        """Replace every grid (a FeatureCollection of polygons with properties.id)."""
        shapes = _geojson_in(parse_grids, body)
        grid_map = GridMap(shapes)
        with db.connection_context():
            count = save_grids(shapes)
        in_worker(book().use_grids, grid_map)
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
        posts = assign_post_grids(_geojson_in(parse_posts, body), book().grids)
        with db.connection_context():
            count = save_posts(posts)
        in_worker(book().use_posts, posts)
        return {"imported": count}


class StreetMapQuery(Schema):
    west = fields.Float(required=True, validate=validate.Range(-180, 180))
    south = fields.Float(required=True, validate=validate.Range(-90, 90))
    east = fields.Float(required=True, validate=validate.Range(-180, 180))
    north = fields.Float(required=True, validate=validate.Range(-90, 90))
    zoom = fields.Integer(required=True, validate=validate.Range(0, 22))


class StreetMapOut(GeoJsonCollection):
    cut = fields.Boolean(metadata={"description": "more lie in the box: zoom in for them"})
    bounds = fields.List(
        fields.Float(),
        allow_none=True,
        metadata={"description": "[west, south, east, north] of the whole map; null: none"},
    )


@blp.route("/map")
@blp.arguments(StreetMapQuery(), location="query")
@blp.response(200, StreetMapOut)
def street_map(query: dict):
    """The street map in a box at a zoom (`fieldlink map import`): streets (`kind`: their
    class), water and place names, as GeoJSON; the larger first, at most MAP_FEATURES."""
    box = (query["west"], query["south"], query["east"], query["north"])
    with db.connection_context():
        features, cut = street_map_in(box, query["zoom"], MAP_FEATURES)
        bounds = street_map_bounds()
    return {"type": "FeatureCollection", "features": features, "cut": cut, "bounds": bounds}


# -- response figures --------------------------------------------------------------------
