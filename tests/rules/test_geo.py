"""Grids and posts from GeoJSON: checks that say what to fix, point in polygon, neighbours."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import Point, shape

from server.rules.geo import (
    GeoError,
    GridMap,
    assign_post_grids,
    parse_grids,
    parse_posts,
    posts_geojson,
)
from tests.conftest import DATA

DOC = json.loads((DATA / "city_grids.geojson").read_text())
POSTS = json.loads((DATA / "city_posts.geojson").read_text())
GRIDS = parse_grids(DOC)
CITY = GridMap(GRIDS)


def test_a_point_gets_the_grid_it_lies_in() -> None:
    assert CITY.grid_at(31.2300, 121.4700) == "G01"
    assert CITY.grid_at(31.2400, 121.4950) == "G06"
    assert CITY.grid_at(31.3000, 121.4700) is None


def test_a_point_on_a_shared_border_gets_the_smaller_id() -> None:
    assert CITY.grid_at(31.2300, 121.4708) == "G01"


def test_neighbours_touch_at_a_side_or_a_corner_or_across_a_sliver() -> None:
    assert CITY.neighbours("G01") == {"G02", "G04", "G05"}
    assert CITY.neighbours("G05") == {"G01", "G02", "G03", "G04", "G06"}
    assert "G05" in CITY.neighbours("G06")  # 2 m apart as digitised
    assert "G05" not in GridMap(GRIDS, touch_tolerance_m=0).neighbours("G06")
    assert CITY.neighbours("nope") == frozenset()


def test_an_empty_map_answers_nothing() -> None:
    empty = GridMap([])
    assert empty.grid_at(31.23, 121.47) is None and empty.bbox() is None and len(empty) == 0


def test_geojson_out_parses_back_with_neighbours() -> None:
    out = CITY.to_geojson()
    assert [g.grid_id for g in parse_grids(out)] == CITY.ids()
    assert out["features"][0]["properties"]["neighbours"] == ["G02", "G04", "G05"]
    assert CITY.bbox() == pytest.approx((31.22, 121.455, 31.247, 121.5024))


def broken(change) -> dict:
    doc = copy.deepcopy(DOC)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "Feature"}, "not a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "no grids in the file"),
        (broken(lambda d: d["features"][2]["properties"].pop("id")), "feature 3: properties.id"),
        (
            broken(lambda d: d["features"][1]["properties"].update(id="G01")),
            'duplicate grid id "G01"',
        ),
        (
            broken(
                lambda d: d["features"][0]["geometry"].update(
                    coordinates=[
                        [
                            [121.45, 31.22],
                            [121.46, 31.23],
                            [121.46, 31.22],
                            [121.45, 31.23],
                            [121.45, 31.22],
                        ]
                    ]
                )
            ),
            'feature 1 ("G01"): polygon is not valid: Self-intersection',
        ),
        (
            broken(
                lambda d: d["features"][0].update(geometry={"type": "Point", "coordinates": [1, 2]})
            ),
            "geometry must be Polygon or MultiPolygon",
        ),
        (
            broken(lambda d: d["features"][0]["geometry"]["coordinates"][0][1].reverse()),
            "coordinates out of range",
        ),
        (
            broken(lambda d: d["features"][1]["properties"].update(id="G\x00")),
            "feature 2: properties.id has a control character U+0000",
        ),
        (
            broken(lambda d: d["features"][1]["properties"].update(name="Bund\x07")),
            'feature 2 ("G02"): name must be plain text',
        ),
    ],
)
def test_bad_grid_files_say_which_feature_and_why(doc, message) -> None:
    with pytest.raises(GeoError) as err:
        parse_grids(doc)
    assert message in str(err.value)


def test_posts_get_the_grid_they_lie_in_unless_they_name_one() -> None:
    posts = assign_post_grids(parse_posts(POSTS), CITY)
    by_id = {p.post_id: p for p in posts}
    assert by_id["P1-01"].grid_id == "G01" and by_id["P3-01"].grid_id == "G03"
    assert {p.tier_min for p in posts} == {1, 3, 5}
    assert parse_posts(posts_geojson(posts)) == posts


def test_a_post_needs_a_tier_of_one_three_or_five_minutes() -> None:
    doc = copy.deepcopy(POSTS)
    doc["features"][0]["properties"]["tier_min"] = 4
    with pytest.raises(GeoError, match="tier_min must be 1, 3 or 5"):
        parse_posts(doc)


@given(st.floats(31.21, 31.26), st.floats(121.45, 121.51))
def test_the_grid_found_covers_the_point_and_none_means_no_grid_does(lat, lon) -> None:
    found = CITY.grid_at(lat, lon)
    covering = [g.grid_id for g in GRIDS if shape(g.geometry).covers(Point(lon, lat))]
    assert found == (min(covering) if covering else None)
