"""Cold spots: how fast an available unit could reach each place, as a map of cells. Pure.

Each cell's centre gets the best ETA of any available unit with a fresh position (the same
ETA model and rules as the recommendation) and one of the command centre's four warning
colours: green within 3 minutes, blue within 5, red beyond 5, black nothing available
within reach.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from server.rules.dispatch import RESPONDING_KINDS, Candidate, Rules

M_PER_DEG = 111_195.0
COLOURS = (("green", 180.0), ("blue", 300.0), ("red", math.inf))


@dataclass(frozen=True)
class Cell:
    south: float
    west: float
    north: float
    east: float
    eta_s: float | None
    colour: str

    def feature(self) -> dict[str, Any]:
        ring = [
            [self.west, self.south],
            [self.east, self.south],
            [self.east, self.north],
            [self.west, self.north],
            [self.west, self.south],
        ]
        return {
            "type": "Feature",
            "properties": {
                "colour": self.colour,
                "eta_s": None if self.eta_s is None else round(self.eta_s),
            },
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }


def colour_of(eta_s: float | None, reach_s: float) -> str:
    if eta_s is None or eta_s > reach_s:
        return "black"
    return next(name for name, limit in COLOURS if eta_s <= limit)


def cells(
    bbox: tuple[float, float, float, float], cell_m: float
) -> Iterator[tuple[float, float, float, float]]:
    """(south, west, north, east) of square cells covering bbox (min_lat, min_lon, ...)."""
    min_lat, min_lon, max_lat, max_lon = bbox
    dlat = cell_m / M_PER_DEG
    dlon = cell_m / (M_PER_DEG * max(0.01, math.cos(math.radians((min_lat + max_lat) / 2))))
    # (less a hair, so a box of whole cells is not given a sliver row of float noise)
    rows = max(1, math.ceil((max_lat - min_lat) / dlat - 1e-9))
    cols = max(1, math.ceil((max_lon - min_lon) / dlon - 1e-9))
    for r in range(rows):
        for c in range(cols):
            south, west = min_lat + r * dlat, min_lon + c * dlon
            yield south, west, south + dlat, west + dlon


def coverage(
    bbox: tuple[float, float, float, float],
    cell_m: float,
    nearby: Callable[[float, float], Iterable[tuple[Candidate, float]]],
    now: float,
    rules: Rules,
    reach_s: float,
    kinds: frozenset[str] = RESPONDING_KINDS,
) -> list[Cell]:
    """The cell map; `nearby(lat, lon)` yields (unit, metres) nearest first, lazily."""
    out = []
    for south, west, north, east in cells(bbox, cell_m):
        lat, lon = (south + north) / 2, (west + east) / 2
        best: float | None = None
        for unit, dist in nearby(lat, lon):
            if best is not None and rules.eta.fastest_eta_s(dist, kinds) >= best:
                break  # nobody further can beat it
            if rules.eta.fastest_eta_s(dist, kinds) > reach_s:
                break  # nobody further is within reach
            usable = unit.status == "available" and now - unit.fix_ts <= rules.stale_s
            if unit.kind in kinds and usable:
                eta = rules.eta.eta_s(dist, unit.kind)
                best = eta if best is None else min(best, eta)
        out.append(Cell(south, west, north, east, best, colour_of(best, reach_s)))
    return out


def summary(cell_map: list[Cell]) -> dict[str, int]:
    counts = Counter(c.colour for c in cell_map)
    return {name: counts.get(name, 0) for name in ("green", "blue", "red", "black")}
