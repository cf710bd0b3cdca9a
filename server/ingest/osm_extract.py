"""An OpenStreetMap extract read into what the console's street map draws
(`rules/streetmap.py`), each part with its GeoJSON geometry; libosmium (pyosmium) reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.rules.streetmap import MapPart, area_part, place_part, way_part


def _point(location: Any) -> list[float]:
    return [round(location.lon, 6), round(location.lat, 6)]  # 6 places: about 10 cm


def _line(nodes: Any) -> list[list[float]]:
    return [_point(n.location) for n in nodes if n.location.valid()]


def read_extract(path: Path) -> Iterator[tuple[MapPart, dict[str, Any]]]:
    """The parts of an .osm.pbf (or .osm) extract the map draws, each with its GeoJSON
    geometry: streets and waterways as lines, water as polygons (a lake drawn as a way or as
    a multipolygon), named places as points."""
    import osmium
    from osmium.osm import Area, Node, Way

    for obj in osmium.FileProcessor(str(path)).with_locations().with_areas():
        tags = {tag.k: tag.v for tag in obj.tags}
        if isinstance(obj, Area):
            if part := area_part(tags):
                polygons = [
                    [_line(outer), *(_line(inner) for inner in obj.inner_rings(outer))]
                    for outer in obj.outer_rings()
                ]
                yield part, {"type": "MultiPolygon", "coordinates": polygons}
        elif isinstance(obj, Way):
            if (part := way_part(tags)) and len(line := _line(obj.nodes)) >= 2:
                yield part, {"type": "LineString", "coordinates": line}
        elif isinstance(obj, Node) and obj.location.valid() and (part := place_part(tags)):
            yield part, {"type": "Point", "coordinates": _point(obj.location)}
