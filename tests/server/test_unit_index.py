"""The spatial index gives every unit in exact great-circle order, lazily."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from geodesy import distance_m
from server.state.unit_index import UnitIndex

CITY = (31.23, 121.47)


def brute(points: dict[str, tuple[float, float]], lat: float, lon: float) -> list[str]:
    return [u for _, u in sorted((distance_m(lat, lon, *p), u) for u, p in points.items())]


def test_update_moves_and_remove_forgets() -> None:
    index = UnitIndex()
    assert list(index.nearest(*CITY)) == [] and len(index) == 0
    index.update("a", 31.23, 121.47)
    index.update("b", 31.24, 121.47)
    index.update("a", 31.25, 121.47)  # moved past b
    assert [u for u, _ in index.nearest(*CITY)] == ["b", "a"]
    index.remove("b")
    index.remove("never-there")
    assert "b" not in index and "a" in index and len(index) == 1


def test_a_query_far_from_every_unit_still_gets_them_all_in_order() -> None:
    index = UnitIndex()
    points = {"sh": (31.23, 121.47), "bj": (39.9, 116.4), "gz": (23.13, 113.26)}
    for unit_id, p in points.items():
        index.update(unit_id, *p)
    assert [u for u, _ in index.nearest(45.0, 90.0)] == brute(points, 45.0, 90.0)


def test_the_first_few_come_without_reading_the_whole_city(monkeypatch) -> None:
    index = UnitIndex()
    for i in range(20_000):
        index.update(f"u{i}", CITY[0] + (i % 200) * 0.001, CITY[1] + (i // 200) * 0.001)
    reads = 0

    def counted(*args: float) -> float:
        nonlocal reads
        reads += 1
        return distance_m(*args)

    monkeypatch.setattr("server.state.unit_index.distance_m", counted)
    # (0.001 degrees of longitude are shorter than of latitude)
    first = list(itertools.islice(index.nearest(*CITY), 3))
    assert reads < 100
    assert [u for u, _ in first] == ["u0", "u200", "u1"]
    assert first[0][1] == 0.0


city_points = st.tuples(st.floats(31.0, 31.5), st.floats(121.2, 121.8))
far_points = st.tuples(st.floats(18.0, 50.0), st.floats(75.0, 130.0))


@given(
    st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=4), st.one_of(city_points, far_points), max_size=60
    ),
    st.lists(
        st.tuples(st.text("abcdefgh", min_size=1, max_size=4), st.one_of(city_points, st.none())),
        max_size=20,
    ),
    city_points,
)
def test_the_order_is_exactly_brute_forces_after_any_moves(points, moves, query) -> None:
    index = UnitIndex(cell_m=500)
    for unit_id, p in points.items():
        index.update(unit_id, *p)
    for unit_id, p in moves:
        if p is None:
            index.remove(unit_id)
            points.pop(unit_id, None)
        else:
            index.update(unit_id, *p)
            points[unit_id] = p
    got = list(index.nearest(*query))
    assert [u for u, _ in got] == brute(points, *query)
    for unit_id, dist in got:
        assert abs(dist - distance_m(*query, *points[unit_id])) < 1e-6
