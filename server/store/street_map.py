"""The console's street map in the store: replaced as a whole by an import, read by the box
a console shows and its zoom."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from server.rules.streetmap import LAYERS, MapPart, bbox_of
from server.store.models import MapFeature, Setting, db

BATCH = 500
# the whole map's box, kept at import: every pan asks for it, an aggregate would scan it all
BOUNDS_SETTING = "street_map_bounds"


def save_street_map(parts: Iterable[tuple[MapPart, dict[str, Any]]]) -> Counter[str]:
    """Replace the street map with `parts` (each with its GeoJSON geometry); how many of
    each layer. One transaction: a console never sees half a map."""
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    box = [180.0, 90.0, -180.0, -90.0]
    with db.atomic():
        MapFeature.delete().execute()
        for part, geometry in parts:
            west, south, east, north = bbox_of(geometry["coordinates"])
            box = [min(box[0], west), min(box[1], south), max(box[2], east), max(box[3], north)]
            rows.append(
                {
                    "layer": part.layer,
                    "kind": part.kind,
                    "name": part.name[:200] if part.name else None,
                    "min_zoom": part.min_zoom,
                    "west": west,
                    "south": south,
                    "east": east,
                    "north": north,
                    "geometry": json.dumps(geometry, separators=(",", ":")),
                }
            )
            counts[part.layer] += 1
            if len(rows) == BATCH:
                MapFeature.insert_many(rows).execute()
                rows.clear()
        if rows:
            MapFeature.insert_many(rows).execute()
        row = {"value": json.dumps(box if counts else None), "changed_by": "map import"}
        Setting.insert(key=BOUNDS_SETTING, **row).on_conflict(
            conflict_target=[Setting.key], update=row
        ).execute()
    return counts


def street_map_in(
    box: tuple[float, float, float, float], zoom: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """GeoJSON features drawn at `zoom` that touch `box` (west, south, east, north), the
    larger ones first, water under streets under names; and whether `limit` cut the rest."""
    west, south, east, north = box
    rows = list(
        MapFeature.select()
        .where(
            MapFeature.min_zoom <= zoom,
            MapFeature.west <= east,
            MapFeature.east >= west,
            MapFeature.south <= north,
            MapFeature.north >= south,
        )
        .order_by(MapFeature.min_zoom, MapFeature.west, MapFeature.south)
        .limit(limit + 1)
    )
    cut = len(rows) > limit
    rows = sorted(rows[:limit], key=lambda r: LAYERS.index(r.layer))
    features = [
        {
            "type": "Feature",
            "geometry": json.loads(r.geometry),
            "properties": {"layer": r.layer, "kind": r.kind, "name": r.name},
        }
        for r in rows
    ]
    return features, cut


def street_map_bounds() -> tuple[float, float, float, float] | None:
    """The box the whole street map lies in, or None without one."""
    row = Setting.get_or_none(Setting.key == BOUNDS_SETTING)
    box = json.loads(row.value) if row else None
    return tuple(box) if box else None
