"""What of an OpenStreetMap extract the console draws as its street map, and from which zoom:
streets by their class, water, and the names of places. Pure: the import (`fieldlink map
import`) reads the file and asks these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# a street's class -> the first zoom it is drawn at (the city at 11-12, a block at 16-17):
# the main roads, the water and the city's name at every zoom
STREET_ZOOM = {
    "motorway": 0,
    "trunk": 0,
    "primary": 0,
    "secondary": 12,
    "tertiary": 13,
    "motorway_link": 13,
    "trunk_link": 13,
    "primary_link": 13,
    "secondary_link": 14,
    "tertiary_link": 14,
    "residential": 14,
    "unclassified": 14,
    "living_street": 15,
    "pedestrian": 15,
    "service": 15,
    "track": 16,
    "footway": 16,
    "cycleway": 16,
    "path": 16,
    "bridleway": 16,
    "steps": 17,
}
WATER_AREA_ZOOM = 0
WATERWAY_ZOOM = {"river": 11, "canal": 12, "stream": 14, "drain": 15, "ditch": 15}
# a place's name -> the first zoom it is written at
PLACE_ZOOM = {"city": 0, "town": 11, "suburb": 12, "village": 13, "quarter": 13}
PLACE_ZOOM |= {"neighbourhood": 14, "hamlet": 14, "square": 16}
WATER_TAGS = (("natural", "water"), ("waterway", "riverbank"), ("landuse", "reservoir"))
LAYERS = ("water", "street", "place")  # drawn in this order: a street over the water


@dataclass(frozen=True)
class MapPart:
    """One thing the map draws: its layer, its class (a street's), its name, and the zoom
    it is drawn from."""

    layer: str
    kind: str
    min_zoom: int
    name: str | None = None


def way_part(tags: Mapping[str, str]) -> MapPart | None:
    """What a line is on the map: a street, a river, or nothing drawn."""
    name = tags.get("name")
    street = tags.get("highway")
    if street in STREET_ZOOM:
        return MapPart("street", street, STREET_ZOOM[street], name)
    waterway = tags.get("waterway")
    if waterway in WATERWAY_ZOOM:
        return MapPart("water", waterway, WATERWAY_ZOOM[waterway], name)
    if tags.get("natural") == "coastline":  # the sea's edge: the sea itself is no shape
        return MapPart("water", "coastline", WATER_AREA_ZOOM, name)
    return None


def area_part(tags: Mapping[str, str]) -> MapPart | None:
    """What a closed shape is on the map: water (a lake, a basin, a river's banks) or nothing."""
    if any(tags.get(key) == value for key, value in WATER_TAGS):
        return MapPart("water", "water", WATER_AREA_ZOOM, tags.get("name"))
    return None


def place_part(tags: Mapping[str, str]) -> MapPart | None:
    """A named place (a district, a neighbourhood) whose name is written on the map."""
    place, name = tags.get("place"), tags.get("name")
    if place in PLACE_ZOOM and name:
        return MapPart("place", place, PLACE_ZOOM[place], name)
    return None


def bbox_of(coordinates: Sequence[Any]) -> tuple[float, float, float, float]:
    """(west, south, east, north) of GeoJSON coordinates at any depth."""
    points: list[Sequence[float]] = []

    def walk(c: Sequence[Any]) -> None:
        if c and isinstance(c[0], int | float):
            points.append(c)
        else:
            for inner in c:
                walk(inner)

    walk(coordinates)
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return min(lons), min(lats), max(lons), max(lats)
