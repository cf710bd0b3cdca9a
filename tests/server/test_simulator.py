"""The simulator's decisions, without I/O: streets, speeds, arrival, the officer's answers."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from geodesy import distance_m
from server.rules.geo import GridMap
from server.sim.simulator import (
    ARRIVAL_RADIUS_M,
    MAX_SPEED_MS,
    MIN_SPEED_MS,
    Car,
    City,
    Zone,
    after_ack,
    arrived,
    car_fix,
    car_xy,
    drive,
    layout_fleet,
    next_ack,
    post_location,
    route,
    take_order,
)
from wire import Channel, encode

CITY = City()
WHOLE = Zone((0, 0), (CITY.blocks_x, CITY.blocks_y))


def on_lattice(city: City, car: Car) -> bool:
    """On a street: one coordinate is a whole number of blocks, the block joins neighbours."""
    x, y = car_xy(city, car)
    a, b = car.came_from, car.heading_to
    adjacent = abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1
    on_street = min(x % city.block_m, -x % city.block_m) < 1e-6 or (
        min(y % city.block_m, -y % city.block_m) < 1e-6
    )
    inside = 0 <= x <= city.blocks_x * city.block_m and 0 <= y <= city.blocks_y * city.block_m
    return adjacent and on_street and inside and 0 <= car.along_m <= city.block_m


def test_patrol_stays_on_the_streets_and_in_speed_bounds():
    rng = random.Random(1)
    car = Car((10, 10), (10, 11), 0.0, 10.0)
    for _ in range(3000):
        car = drive(CITY, car, 1.0, WHOLE, rng)
        assert on_lattice(CITY, car)
        assert MIN_SPEED_MS <= car.speed <= MAX_SPEED_MS


def test_a_second_covers_what_the_speed_says():
    rng = random.Random(2)
    car = Car((10, 10), (11, 10), 0.0, 12.0)
    moved = drive(CITY, car, 1.0, WHOLE, rng)
    assert moved.along_m == 12.0 and moved.heading_to == (11, 10)


def test_fixes_are_one_second_apart_at_street_speed():
    rng = random.Random(3)
    car = Car((5, 5), (5, 6), 0.0, 10.0)
    before = car_fix(CITY, car, 0.0)
    for ts in range(1, 600):
        car = drive(CITY, car, 1.0, WHOLE, rng)
        fix = car_fix(CITY, car, float(ts))
        step = distance_m(before["lat"], before["lon"], fix["lat"], fix["lon"])
        assert step <= MAX_SPEED_MS + 0.01  # never faster than traffic, corners included
        before = fix


def test_patrol_keeps_to_the_home_grid_once_inside():
    rng = random.Random(4)
    home = CITY.zones()["G4"]
    car = Car((0, 20), (1, 20), 0.0, 11.0)  # starts in the far corner (G1)
    for _ in range(1200):
        car = drive(CITY, car, 1.0, home, rng)
    for _ in range(1200):
        car = drive(CITY, car, 1.0, home, rng)
        assert home.contains(car.came_from) and home.contains(car.heading_to)


def test_a_car_drives_to_its_goal_parks_and_arrives():
    rng = random.Random(5)
    lat, lon = post_location(CITY, (14, 3))
    goal = CITY.nearest_node(lat, lon)
    assert goal == (14, 3)
    car = Car((2, 17), (2, 18), 0.0, 10.0)
    seconds = 0
    while car.speed > 0 and seconds < 1000:
        car = drive(CITY, car, 1.0, Zone.at(goal), rng, park=True)
        seconds += 1
    # 12 + 15 blocks of 200 m at 8-14 m/s: between 6.5 and 11.5 minutes
    assert 5400 / MAX_SPEED_MS - 20 <= seconds <= 5400 / MIN_SPEED_MS + 20
    assert car.heading_to == goal
    assert arrived(CITY, car, lat, lon, goal)
    assert drive(CITY, car, 5.0, Zone.at(goal), rng, park=True) == car  # stays parked


def test_arrival_is_within_thirty_metres_or_parked_at_the_goal():
    goal = (10, 10)
    lat, lon = CITY.latlon(*CITY.xy(goal))
    near = Car((9, 10), (10, 10), CITY.block_m - ARRIVAL_RADIUS_M + 1, 10.0)
    far = Car((9, 10), (10, 10), CITY.block_m - ARRIVAL_RADIUS_M - 5, 10.0)
    assert arrived(CITY, near, lat, lon, goal)
    assert not arrived(CITY, far, lat, lon, goal)
    # a place off the streets: parked at its nearest intersection is as close as it gets
    off_lat, off_lon = CITY.latlon(CITY.block_m * 10 + 90, CITY.block_m * 10 + 90)
    parked = Car((9, 10), (10, 10), CITY.block_m, 0.0)
    assert arrived(CITY, parked, off_lat, off_lon, goal)
    assert not arrived(CITY, parked, off_lat, off_lon, (11, 10))


def test_the_officer_accepts_drives_arrives_and_clears():
    rng = random.Random(6)
    order = {"order_id": "o1", "location": {"lat": 35.41, "lon": 116.59}}
    task = take_order(CITY, order, 100.0, rng)
    if task.decline_reason:
        task = replace(task, decline_reason="")
    assert 102.0 <= task.due <= 106.0 and 30 <= task.scene_s <= 90
    assert next_ack(task, 101.0, on_scene=False) is None
    assert next_ack(task, task.due, on_scene=False) == "accepted"
    task = after_ack(task, "accepted", task.due, rng)
    assert route(WHOLE, task) == (WHOLE, False)  # still on patrol until it says en route
    assert next_ack(task, task.due, on_scene=False) == "en_route"
    task = after_ack(task, "en_route", task.due, rng)
    assert route(WHOLE, task) == (Zone.at(task.goal), True)
    assert next_ack(task, task.due + 600, on_scene=False) is None  # driving takes what it takes
    assert next_ack(task, task.due + 600, on_scene=True) == "on_scene"
    task = after_ack(task, "on_scene", 1000.0, rng)
    assert next_ack(task, 1000.0 + task.scene_s - 1, on_scene=True) is None
    assert next_ack(task, 1000.0 + task.scene_s, on_scene=True) == "cleared"
    assert after_ack(task, "cleared", 1100.0, rng) is None


def test_about_one_officer_in_ten_declines_with_a_reason():
    rng = random.Random(7)
    order = {"order_id": "o1", "location": {"lat": 35.41, "lon": 116.59}}
    tasks = [take_order(CITY, order, 0.0, rng) for _ in range(2000)]
    declines = [t for t in tasks if t.decline_reason]
    assert 140 <= len(declines) <= 260
    task = declines[0]
    assert next_ack(task, task.due, on_scene=False) == "declined"
    assert after_ack(task, "declined", task.due, rng) is None


def test_layout_spreads_cars_over_the_grids_and_fixes_are_wire_valid():
    specs = layout_fleet(CITY, 8, 3, random.Random(8))
    cars = [s for s in specs if s.kind == "patrol_car"]
    kiosks = [s for s in specs if s.kind == "guard_post"]
    assert [s.unit_id for s in cars][:2] == ["car-01", "car-02"]
    assert [s.grid for s in cars] == ["G1", "G2", "G3", "G4"] * 2
    assert all(CITY.zones()[s.grid].contains(s.node) for s in specs)
    assert [s.unit_id for s in kiosks] == ["kiosk-01", "kiosk-02", "kiosk-03"]
    car = Car((3, 3), (3, 4), 50.0, 9.5)
    encode(Channel.POSITION, car_fix(CITY, car, 1_800_000_000.0))  # raises if not valid


def test_the_lattice_spans_about_four_km_around_the_centre():
    south_west = CITY.latlon(0, 0)
    north_east = CITY.latlon(4000, 4000)
    assert CITY.latlon(2000, 2000) == (CITY.lat, CITY.lon)
    assert CITY.to_xy(*north_east) == pytest.approx((4000, 4000))
    width = distance_m(south_west[0], south_west[1], south_west[0], north_east[1])
    height = distance_m(south_west[0], south_west[1], north_east[0], south_west[1])
    assert abs(width - 4000) < 5 and abs(height - 4000) < 5


def test_the_demo_grids_as_polygons_agree_with_the_lattice_and_hold_the_kiosks():
    assert_grids_agree(CITY, layout_fleet(CITY, 8, 8, random.Random(3)))


def assert_grids_agree(city: City, specs: list) -> None:
    grids = GridMap(city.grid_shapes())
    for i in range(0, city.blocks_x + 1):
        for j in range(0, city.blocks_y + 1):
            node = (i, j)
            inside = grids.grid_at(*city.latlon(*city.xy(node)))
            # a node on a border lies in both: the polygon map picks the smaller id
            assert inside is not None and inside <= city.grid_of(node)
    for spec in specs:
        if spec.kind == "guard_post":
            assert grids.grid_at(*post_location(city, spec.node)) == spec.grid


def test_a_city_of_51_grids_is_near_square_and_its_last_grid_takes_the_rest_of_its_row():
    city = City.of_grids(51)
    zones = city.zones()
    assert (city.cols, city.rows) == (8, 7) and len(zones) == 51
    assert list(zones)[:2] == ["G01", "G02"] and zones["G51"].hi[0] == city.blocks_x
    assert zones["G01"] == Zone((0, 36), (6, 42))  # the north-west corner
    specs = layout_fleet(city, 51 * 5, 40, random.Random(5))
    assert {s.grid for s in specs if s.kind == "patrol_car"} == set(zones)
    assert_grids_agree(city, specs)
