"""Cold spots on a small known layout: which cells are green, blue, red and black."""

from __future__ import annotations

import math

from server.rules.coverage import colour_of, coverage, summary
from server.rules.dispatch import Candidate, Rules, brute_force_nearby

NOW = 1_800_000_000.0
CENTRE = (31.23, 121.47)
M_PER_DEG = 111_195.0
RULES = Rules()  # 11 m/s patrol cars, road factor 1.4: 3 min = 1,414 m, 5 min = 2,357 m


def box(half_m: float) -> tuple[float, float, float, float]:
    dlat = half_m / M_PER_DEG
    dlon = half_m / (M_PER_DEG * math.cos(math.radians(CENTRE[0])))
    return CENTRE[0] - dlat, CENTRE[1] - dlon, CENTRE[0] + dlat, CENTRE[1] + dlon


def mapped(units: list[Candidate], half_m: float = 5000, cell_m: float = 500, reach_s=600):
    return coverage(
        box(half_m),
        cell_m,
        lambda lat, lon: brute_force_nearby(lat, lon, units),
        NOW,
        RULES,
        reach_s,
    )


def car(north_m: float = 0.0, **kw) -> Candidate:
    kw.setdefault("fix_ts", NOW)
    return Candidate("car", "patrol_car", CENTRE[0] + north_m / M_PER_DEG, CENTRE[1], **kw)


def test_the_four_colours() -> None:
    assert colour_of(100, 600) == "green"
    assert colour_of(180, 600) == "green"
    assert colour_of(250, 600) == "blue"
    assert colour_of(400, 600) == "red"
    assert colour_of(700, 600) == "black"
    assert colour_of(None, 600) == "black"


def test_rings_around_one_car_in_the_middle() -> None:
    cells = mapped([car()])
    assert len(cells) == 400  # 10 km square in 500 m cells
    centre = min(cells, key=lambda c: abs(c.south - CENTRE[0]) + abs(c.west - CENTRE[1]))
    assert centre.colour == "green"
    counts = summary(cells)
    assert all(counts[colour] > 0 for colour in ("green", "blue", "red", "black"))
    for cell in cells:  # colours grow outwards with the ETA
        assert cell.colour == colour_of(cell.eta_s, 600)
    # green cells are the ones whose centre is within 1,414 m of the car
    assert counts["green"] == 24


def test_no_available_unit_is_all_black() -> None:
    counts = summary(mapped([car(status="on_scene"), car(100, fix_ts=NOW - 600)]))
    assert counts == {"green": 0, "blue": 0, "red": 0, "black": 400}


def test_a_cell_is_a_geojson_square_with_its_colour() -> None:
    [cell] = mapped([car()], half_m=100, cell_m=200)
    feature = cell.feature()
    assert feature["properties"] == {"colour": "green", "eta_s": 0}
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
