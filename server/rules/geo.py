"""Grids and response posts: GeoJSON in, checked; point in polygon; which grids touch.

Pure: the caller reads the files. A city's grids are digitised by hand, so neighbours are
grids within a few metres of each other, not only those sharing an exact border.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from shapely import STRtree
from shapely.geometry import Point, mapping, shape
from shapely.prepared import prep
from shapely.validation import explain_validity

from wire import unwritable

TIERS = (1, 3, 5)  # minutes: the response posts' rings
M_PER_DEG = 111_195.0


class GeoError(ValueError):
    """A grid or post file the server cannot use; the text says which feature and why."""


@dataclass(frozen=True)
class GridShape:
    grid_id: str
    name: str
    geometry: dict[str, Any]  # GeoJSON Polygon or MultiPolygon


@dataclass(frozen=True)
class PostPoint:
    post_id: str
    name: str
    tier_min: int
    lat: float
    lon: float
    grid_id: str | None = None


def _features(doc: Any, what: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, feature) of a FeatureCollection, each with an id, ids unique."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise GeoError("not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise GeoError(f"no {what} in the file")
    out, seen = [], set()
    for n, feature in enumerate(features, 1):
        if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
            raise GeoError(f"feature {n}: not a Feature with properties")
        fid = feature["properties"].get("id", feature.get("id"))
        if not isinstance(fid, str) or not 0 < len(fid) <= 64:
            raise GeoError(f"feature {n}: properties.id missing (a string of 1-64 characters)")
        if problem := unwritable(fid):
            raise GeoError(f"feature {n}: properties.id has a {problem}")
        if fid in seen:
            raise GeoError(f'duplicate {what[:-1]} id "{fid}"')
        seen.add(fid)
        out.append((f'feature {n} ("{fid}")', feature))
    return out


def _geometry(label: str, feature: dict[str, Any], kinds: tuple[str, ...]) -> Any:
    raw = feature.get("geometry")
    if not isinstance(raw, dict) or raw.get("type") not in kinds:
        raise GeoError(f"{label}: geometry must be {' or '.join(kinds)}")
    try:
        geom = shape(raw)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise GeoError(f"{label}: bad coordinates: {exc}") from None
    if geom.is_empty:
        raise GeoError(f"{label}: empty geometry")
    min_x, min_y, max_x, max_y = geom.bounds
    if not (-180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90):
        raise GeoError(f"{label}: coordinates out of range (GeoJSON is [lon, lat])")
    if not geom.is_valid:
        raise GeoError(f"{label}: polygon is not valid: {explain_validity(geom)}")
    return geom


def _name(label: str, feature: dict[str, Any], default: str) -> str:
    name = feature["properties"].get("name")
    if not isinstance(name, str) or not name:
        return default
    if len(name) > 200 or unwritable(name):
        raise GeoError(f"{label}: name must be plain text of up to 200 characters")
    return name


def parse_grids(doc: Any) -> list[GridShape]:
    shapes = []
    for label, feature in _features(doc, "grids"):
        geom = _geometry(label, feature, ("Polygon", "MultiPolygon"))
        gid = feature["properties"].get("id", feature.get("id"))
        shapes.append(GridShape(gid, _name(label, feature, gid), mapping(geom)))
    return shapes


def parse_posts(doc: Any) -> list[PostPoint]:
    posts = []
    for label, feature in _features(doc, "posts"):
        geom = _geometry(label, feature, ("Point",))
        props = feature["properties"]
        if props.get("tier_min") not in TIERS or isinstance(props.get("tier_min"), bool):
            raise GeoError(f"{label}: tier_min must be 1, 3 or 5 (minutes)")
        grid = props.get("grid")
        if grid is not None and (not isinstance(grid, str) or unwritable(grid)):
            raise GeoError(f"{label}: grid must be a grid id")
        pid = props.get("id", feature.get("id"))
        posts.append(
            PostPoint(pid, _name(label, feature, pid), props["tier_min"], geom.y, geom.x, grid)
        )
    return posts


class GridMap:
    """The city's grids: which one a point is in, and which touch each other."""

    def __init__(self, grids: Sequence[GridShape], touch_tolerance_m: float = 5.0):
        self.grids = sorted(grids, key=lambda g: g.grid_id)
        self._geoms = [shape(g.geometry) for g in self.grids]
        self._prepared = [prep(g) for g in self._geoms]
        self._tree = STRtree(self._geoms)
        self._neighbours: dict[str, frozenset[str]] = {}
        for i, (grid, geom) in enumerate(zip(self.grids, self._geoms, strict=True)):
            lat = geom.centroid.y
            # metres to degrees at this latitude; the larger (longitude) keeps it generous
            tolerance = touch_tolerance_m / (M_PER_DEG * max(0.01, math.cos(math.radians(lat))))
            near = self._tree.query(geom.buffer(tolerance), predicate="intersects")
            self._neighbours[grid.grid_id] = frozenset(
                self.grids[j].grid_id for j in near if j != i
            )

    def __len__(self) -> int:
        return len(self.grids)

    def ids(self) -> list[str]:
        return [g.grid_id for g in self.grids]

    def grid_at(self, lat: float, lon: float) -> str | None:
        """The grid covering the point; on a shared border, the smallest id."""
        point = Point(lon, lat)
        hits = sorted(self._tree.query(point))
        return next((self.grids[i].grid_id for i in hits if self._prepared[i].covers(point)), None)

    def neighbours(self, grid_id: str) -> frozenset[str]:
        return self._neighbours.get(grid_id, frozenset())

    def bbox(self) -> tuple[float, float, float, float] | None:
        """(min_lat, min_lon, max_lat, max_lon) of every grid."""
        if not self._geoms:
            return None
        bounds = [g.bounds for g in self._geoms]
        return (
            min(b[1] for b in bounds),
            min(b[0] for b in bounds),
            max(b[3] for b in bounds),
            max(b[2] for b in bounds),
        )

    def to_geojson(self) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {
                        "id": g.grid_id,
                        "name": g.name,
                        "neighbours": sorted(self.neighbours(g.grid_id)),
                    },
                    "geometry": g.geometry,
                }
                for g in self.grids
            ],
        }


def posts_geojson(posts: Sequence[PostPoint]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "id": p.post_id,
                    "name": p.name,
                    "tier_min": p.tier_min,
                    "grid": p.grid_id,
                },
                "geometry": {"type": "Point", "coordinates": [p.lon, p.lat]},
            }
            for p in posts
        ],
    }


def assign_post_grids(posts: Sequence[PostPoint], grid_map: GridMap) -> list[PostPoint]:
    """Posts without a grid get the one they lie in."""
    return [
        p if p.grid_id is not None else replace(p, grid_id=grid_map.grid_at(p.lat, p.lon))
        for p in posts
    ]
