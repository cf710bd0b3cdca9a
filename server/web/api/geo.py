"""Where the city is divided: the response grids and the 1/3/5-minute posts."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort
from marshmallow import Schema, fields

from server.rules.geo import (
    GeoError,
    GridMap,
    assign_post_grids,
    parse_grids,
    parse_posts,
    posts_geojson,
)
from server.runtime import metrics
from server.store import db, load_posts, save_grids, save_posts
from server.web.api.common import GeoJsonCollection, area, book, in_worker

blp = area("geo", "Response grids and posts")


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


# -- response figures --------------------------------------------------------------------
