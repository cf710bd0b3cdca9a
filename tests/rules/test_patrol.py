"""Patrol quality on tracks with known answers, and on a real NMEA track."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

import pytest

from geodesy import distance_m
from server.rules.export import patrol_csv
from server.rules.patrol import patrol_report, shift_by_grid, shift_by_officer
from server.rules.shifts import Stint

M_PER_DEG = 111_195.0
START = (31.23, 121.47)
T0 = 1_800_000_000.0


def at(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    return (
        START[0] + north_m / M_PER_DEG,
        START[1] + east_m / (M_PER_DEG * 0.8549),  # cos(31.23°)
    )


def fix(ts: float, east_m: float, north_m: float = 0.0, acc: float = 5.0) -> dict:
    lat, lon = at(east_m, north_m)
    return {"ts": ts, "lat": lat, "lon": lon, "acc": acc}


def no_grids(_lat: float, _lon: float) -> None:
    return None


def test_a_drive_a_long_stop_and_a_drive() -> None:
    track = [fix(T0 + s, 10.0 * s) for s in range(101)]  # 1 km east at 10 m/s
    track += [fix(T0 + 100 + s, 1000.0) for s in range(1, 601)]  # parked 10 min
    track += [fix(T0 + 700 + s, 1000.0 + 10.0 * s) for s in range(1, 51)]  # 500 m more
    report = patrol_report(track, no_grids, None).public()
    assert report["km"] == pytest.approx(1.5, rel=0.01)
    # the first metres after the stop go to the stop: the anchor moves only past the allowance
    assert report["moving_s"] == pytest.approx(150, abs=3)
    assert report["stationary_s"] == pytest.approx(600, abs=3)
    [stop] = report["stops"]
    assert stop["minutes"] == pytest.approx(10.0, abs=0.1) and stop["from"] == T0 + 100


def test_a_parked_car_does_not_drive_kilometres_of_gps_jitter() -> None:
    rng = random.Random(5)
    track = [fix(T0 + s, rng.uniform(-6, 6), rng.uniform(-6, 6), acc=8) for s in range(3600)]
    naive = sum(
        distance_m(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in itertools.pairwise(track)
    )
    report = patrol_report(track, no_grids, None).public()
    assert naive > 10_000  # what summing the noise would say
    assert report["km"] < 0.05
    assert report["stationary_s"] == 3599 and report["moving_s"] == 0
    assert len(report["stops"]) == 1 and report["stops"][0]["minutes"] == pytest.approx(60, abs=1)


def test_an_impossible_jump_is_dropped_and_a_silence_is_no_data() -> None:
    track = [fix(T0 + s, 10.0 * s) for s in range(50)]
    track.insert(20, fix(T0 + 19.5, 5000.0))  # 5 km away for half a second
    track += [fix(T0 + 1249 + s, 490.0 + 10.0 * s) for s in range(1, 11)]  # after 20 min
    report = patrol_report(track, no_grids, None).public()
    assert report["outliers"] == 1
    assert report["no_data_s"] == 1201
    # 480 m then 80 m in whole 20 m anchor steps; across the silence nothing is counted
    assert report["km"] == pytest.approx(0.56, abs=0.001)


def test_time_in_the_home_grid() -> None:
    track = [fix(T0 + s, 10.0 * s) for s in range(101)]  # crosses into G2 at 500 m

    def grid_at(_lat: float, lon: float) -> str:
        return "G1" if lon < at(500)[1] else "G2"

    report = patrol_report(track, grid_at, "G1").public()
    assert report["in_home_grid_s"] == 50 and report["in_home_grid_share"] == 0.5


def rmc_fixes(path) -> list[dict]:
    """RMC sentences as fixes: the reference parser, independent of gpsd."""
    fixes = []
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if not parts[0].endswith("RMC") or len(parts) < 10 or parts[2] != "A":
            continue
        lat = int(parts[3][:2]) + float(parts[3][2:]) / 60
        lon = int(parts[5][:3]) + float(parts[5][3:]) / 60
        lat, lon = (-lat if parts[4] == "S" else lat), (-lon if parts[6] == "W" else lon)
        when = datetime.strptime(parts[9] + parts[1][:6], "%d%m%y%H%M%S").replace(tzinfo=UTC)
        ts = when.timestamp() + float("0" + parts[1][6:])
        speed = float(parts[7]) * 0.514444 if parts[7] else None  # knots
        fixes.append({"ts": ts, "lat": lat, "lon": lon, "speed": speed})
    return fixes


def test_the_boat_track_distance_is_within_one_percent_of_the_plain_sum(nmea_dir) -> None:
    fixes = rmc_fixes(nmea_dir / "bundg_zeus_9.log")
    assert len(fixes) > 100
    reference = sum(
        distance_m(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in itertools.pairwise(fixes)
    )
    report = patrol_report(fixes, no_grids, None).public()
    assert report["km"] * 1000 == pytest.approx(reference, rel=0.01)
    assert report["moving_s"] > 0 and report["outliers"] == 0


def test_a_shift_adds_up_each_home_grids_units_and_exports_one_row_each() -> None:
    drive = patrol_report([fix(T0 + s, 10.0 * s) for s in range(101)], no_grids, "g1")
    parked = [fix(T0 + s, 0.0) for s in range(0, 601, 5)]
    stood = patrol_report(parked, no_grids, "g1")
    elsewhere = patrol_report(parked, no_grids, None)
    grids = shift_by_grid([("g1", drive), ("g1", stood), (None, elsewhere)])
    assert [(g["grid"], g["units"], g["long_stops"]) for g in grids] == [("-", 1, 1), ("g1", 2, 1)]
    g1 = grids[1]
    assert g1["km"] == pytest.approx(1.0, rel=0.01)
    assert g1["moving_s"] == pytest.approx(100, abs=2)
    assert g1["stationary_s"] == pytest.approx(600, abs=2)
    units = [
        {"unit_id": "car-1", "home_grid": "g1", **drive.public()},
        {"unit_id": "car-2", "home_grid": None, **elsewhere.public()},
    ]
    lines = patrol_csv(units, grids).splitlines()
    assert lines[0] == (
        "unit_id,home_grid,officer,name,units,km,moving_s,stationary_s,no_data_s,in_home_grid_s,"
        "long_stops"
    )
    assert lines[1].startswith("car-1,g1,,,1,1.0") and lines[2].startswith("car-2,,,,1,0.0")
    assert lines[4].startswith(",g1,,,2,")


def test_each_officers_shift_adds_up_the_units_they_were_on_while_on_them() -> None:
    drive = patrol_report([fix(T0 + s, 10.0 * s) for s in range(101)], no_grids, None)
    stood = patrol_report([fix(T0 + s, 0.0) for s in range(0, 601, 5)], no_grids, None)
    li_car1 = Stint("A1", "Li Wei", "car-1", T0, T0 + 100)
    li_car2 = Stint("A1", "Li Wei", "car-2", T0 + 200, T0 + 800)
    wang = Stint("B2", "Wang Fang", "car-1", T0, T0 + 100)
    rows = shift_by_officer([(li_car1, drive), (wang, drive), (li_car2, stood)])
    assert [(r["officer"], r["name"], r["units"], r["long_stops"]) for r in rows] == [
        ("A1", "Li Wei", 2, 1),
        ("B2", "Wang Fang", 1, 0),
    ]
    assert rows[0]["km"] == pytest.approx(1.0, rel=0.01)
    assert rows[0]["stationary_s"] == pytest.approx(600, abs=2)
    lines = patrol_csv([], [], rows).splitlines()
    assert lines[1].startswith(",,A1,Li Wei,2,1.0") and lines[2].startswith(",,B2,Wang Fang,1,")
