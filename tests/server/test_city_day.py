"""A simulated city's day, without I/O: the daily curve of calls, the mix, where they happen;
and the street router that tells the server drive times along the simulated streets."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from server.scale.routing import OsrmRouter, RoutingError
from server.sim.city_day import (
    CALL_MIX,
    HOURLY_VOLUME,
    call_times,
    day_plan,
    expected_total,
    hourly_counts,
    per_hour,
)
from server.sim.simulator import City
from server.sim.street_router import MEAN_SPEED_MS, StreetRouter, street_legs

TZ = ZoneInfo("Asia/Shanghai")
MIDNIGHT = datetime(2026, 11, 24, tzinfo=TZ).timestamp()


def test_calls_follow_the_daily_curve_hour_by_hour():
    times = call_times(MIDNIGHT, 24, 24_000, TZ, random.Random(1))
    counts = hourly_counts([type("C", (), {"at": t})() for t in times], TZ)
    for hour, count in enumerate(counts):
        expected = per_hour(24_000, hour)
        assert abs(count - expected) < 0.15 * expected, (hour, count, expected)
    assert counts.index(max(counts)) in (19, 20, 21)  # the evening peak
    assert counts.index(min(counts)) in (3, 4, 5)  # the small hours


def test_a_period_holds_only_its_hours_and_the_expected_number_of_calls():
    evening = MIDNIGHT + 19 * 3600
    times = call_times(evening, 3, 24_000, TZ, random.Random(2))
    assert {datetime.fromtimestamp(t, TZ).hour for t in times} == {19, 20, 21}
    assert times == sorted(times)
    expected = expected_total(evening, 3, 24_000, TZ)
    assert expected == pytest.approx(sum(per_hour(24_000, h) for h in (19, 20, 21)))
    assert abs(len(times) - expected) < 4 * expected**0.5
    assert expected_total(MIDNIGHT, 24, 1000, TZ) == pytest.approx(1000)
    assert expected_total(MIDNIGHT + 1800, 1, 1000, TZ) == pytest.approx(
        (per_hour(1000, 0) + per_hour(1000, 1)) / 2
    )


def test_the_plan_is_the_same_for_a_seed_and_mixes_calls_and_panics():
    grids = [f"G{i:02d}" for i in range(1, 11)]
    posts = {f"kiosk-{i:02d}": grids[i % 3] for i in range(12)}
    plan = day_plan(grids, posts, MIDNIGHT, 24, 5000, 0.1, TZ, seed=7)
    assert plan == day_plan(grids, posts, MIDNIGHT, 24, 5000, 0.1, TZ, seed=7)
    assert plan != day_plan(grids, posts, MIDNIGHT, 24, 5000, 0.1, TZ, seed=8)
    panics = [c for c in plan if c.kind == "panic"]
    calls = [c for c in plan if c.kind == "call"]
    assert 0.08 < len(panics) / len(plan) < 0.12
    assert all(posts[c.post] == c.grid for c in panics)
    mix = {category: priority for category, priority, _ in CALL_MIX}
    assert all(mix[c.category] == c.priority and 30 <= c.taking_s <= 120 for c in calls)
    assert all(0 <= c.point[0] < 1 and 0 <= c.point[1] < 1 for c in calls)
    by_grid = sorted(sum(c.grid == g for c in calls) for g in grids)
    assert by_grid[-1] > 1.5 * by_grid[0]  # some grids are busier than others
    assert len(HOURLY_VOLUME) == 24


def test_drive_along_the_streets_is_east_west_plus_north_south():
    city = City()
    goal = city.latlon(*city.xy((10, 10)))
    east = city.latlon(2000 + 1000, 2000)  # on the same street, 1 km east
    diagonal = city.latlon(2000 + 600, 2000 + 800)  # 1 km away as the crow flies
    (t1, d1), (t2, d2) = street_legs(city, [east, diagonal], goal)
    assert d1 == pytest.approx(1000, abs=0.5) and t1 == pytest.approx(1000 / MEAN_SPEED_MS, 0.01)
    assert d2 == pytest.approx(1400, abs=0.5) and t2 == pytest.approx(1400 / MEAN_SPEED_MS, 0.01)


def test_the_street_router_answers_the_server_as_osrm_does():
    city = City()
    router = StreetRouter(city).start()
    client = OsrmRouter(router.url, timeout_s=2)
    try:
        goal = city.latlon(1000, 1000)
        cars = [city.latlon(1000, 3000), city.latlon(2500, 1800)]
        legs = client.to_point(goal, cars)
        assert [(leg.duration_s, leg.distance_m) for leg in legs] == street_legs(city, cars, goal)
        assert client.to_point(goal, []) == []
        client.base_url = router.url + "/nowhere"
        with pytest.raises(RoutingError, match="InvalidQuery"):
            client.to_point(goal, cars)
    finally:
        client.close()
        router.stop()
