"""The fix stage's decisions as plain functions: each quality filter, and the reporting rate."""

from __future__ import annotations

import math

import pytest

from edge_agent.config import FiltersSettings, GpsdSettings
from edge_agent.fixes import (
    FixStage,
    Track,
    duplicate,
    future,
    inaccurate,
    invalid,
    is_due,
    jump,
    no_fix,
    null_island,
    rejected_by,
    slow_since,
)
from geodesy import fix_distance_m

NOW = 1_700_000_000.0
FILTERS = FiltersSettings()
RATE = GpsdSettings(
    publish_interval_s=1.0,
    min_distance_m=50.0,
    stationary_speed_mps=0.5,
    stationary_after_s=60.0,
    stationary_interval_s=30.0,
)
M_PER_DEG_LAT = 111_195.0  # on the mean-radius sphere


def fix(ts: float = NOW, lat: float = 52.0, lon: float = 5.0, **extra) -> dict:
    return {"ts": ts, "lat": lat, "lon": lon, "mode": 3, **extra}


def north(metres: float, ts: float) -> dict:
    return fix(ts, lat=52.0 + metres / M_PER_DEG_LAT)


def test_distance_is_haversine_in_metres():
    assert fix_distance_m(fix(), fix()) == 0
    assert fix_distance_m(fix(), north(1000, NOW)) == pytest.approx(1000, rel=1e-3)
    # one degree of longitude at 60 N is half of one at the equator
    assert fix_distance_m(fix(lat=60, lon=0), fix(lat=60, lon=1)) == pytest.approx(55_597, rel=1e-3)


def test_no_fix_needs_the_configured_mode():
    assert no_fix(fix(mode=1), Track(), FILTERS, NOW)
    assert not no_fix(fix(mode=2), Track(), FILTERS, NOW)
    assert no_fix(fix(mode=2), Track(), FiltersSettings(min_mode=3), NOW)
    assert no_fix({"ts": NOW, "lat": 1, "lon": 1}, Track(), FILTERS, NOW)  # mode unknown


@pytest.mark.parametrize(
    ("extra", "dropped"),
    [
        ({"lat": 90, "lon": 180}, False),
        ({"lat": -90, "lon": -180}, False),
        ({"lat": 90.1}, True),
        ({"lon": -180.5}, True),
        ({"lat": math.nan}, True),
        ({"speed": -0.01}, True),  # a receiver's rounding: the wire protocol refuses it
        ({"heading": 360.5}, True),
        ({"acc": -1}, True),
        ({"alt": math.inf}, True),
    ],
)
def test_a_fix_the_wire_protocol_refuses_is_invalid(extra, dropped):
    assert invalid(fix(**extra), Track(), FILTERS, NOW) is dropped


def test_null_island_only_at_exactly_zero_zero_and_only_when_enabled():
    assert null_island(fix(lat=0, lon=0), Track(), FILTERS, NOW)
    assert not null_island(fix(lat=0, lon=0.0001), Track(), FILTERS, NOW)
    assert not null_island(fix(lat=0, lon=0), Track(), FiltersSettings(null_island=False), NOW)


def test_duplicate_is_a_time_not_after_the_last_accepted():
    track = Track(last_accepted=fix(ts=NOW))
    assert duplicate(fix(ts=NOW), track, FILTERS, NOW)
    assert duplicate(fix(ts=NOW - 5), track, FILTERS, NOW)  # gpsd replaying the past
    assert not duplicate(fix(ts=NOW + 0.1), track, FILTERS, NOW)
    assert not duplicate(fix(), Track(), FILTERS, NOW)


def test_future_dated_beyond_the_allowance():
    s = FiltersSettings(max_future_s=600)
    assert not future(fix(ts=NOW + 600), Track(), s, NOW)
    assert future(fix(ts=NOW + 601), Track(), s, NOW)
    # what gpsd 3.22 makes of a 2014 log: a GPS week rollover guess, 20 years ahead
    assert future(fix(ts=2_039_310_447.0), Track(), s, NOW)
    assert not future(fix(ts=NOW + 10**9), Track(), FiltersSettings(max_future_s=0), NOW)


def test_jump_is_the_speed_implied_from_the_last_published_fix():
    track = Track(last_published=fix(ts=NOW))
    assert not jump(north(69, NOW + 1), track, FILTERS, NOW)  # 69 m/s: a fast car
    assert jump(north(71, NOW + 1), track, FILTERS, NOW)
    assert not jump(north(7000, NOW + 101), track, FILTERS, NOW)  # far, but after a long gap
    assert not jump(north(71, NOW + 1), Track(), FILTERS, NOW)  # nothing published yet
    assert not jump(north(71, NOW + 1), track, FiltersSettings(max_speed_mps=0), NOW)


def test_inaccurate_only_when_a_limit_is_set_and_an_estimate_exists():
    s = FiltersSettings(max_acc_m=25)
    assert inaccurate(fix(acc=25.1), Track(), s, NOW)
    assert not inaccurate(fix(acc=25), Track(), s, NOW)
    assert not inaccurate(fix(), Track(), s, NOW)
    assert not inaccurate(fix(acc=500), Track(), FILTERS, NOW)  # default: no limit


def test_rejected_by_names_the_first_filter_in_order():
    assert rejected_by(fix(), Track(), FILTERS, NOW) is None
    assert rejected_by(fix(mode=1, lat=0, lon=0), Track(), FILTERS, NOW) == "no_fix"
    assert rejected_by(fix(lat=0, lon=0), Track(), FILTERS, NOW) == "null_island"


def test_slow_since_starts_keeps_and_resets():
    assert slow_since(None, fix(ts=10, speed=0.2), RATE) == 10
    assert slow_since(10, fix(ts=20, speed=0.1), RATE) == 10
    assert slow_since(10, fix(ts=30, speed=0.5), RATE) is None  # at the threshold: moving
    assert slow_since(None, fix(ts=40), RATE) == 40  # no speed: the distance rule still acts


def test_due_by_time_or_by_distance():
    track = Track(last_published=fix(ts=NOW))
    assert is_due(fix(), Track(), RATE)  # the first fix
    assert not is_due(fix(ts=NOW), track, RATE)
    assert not is_due(north(10, NOW + 0.5), track, RATE)
    assert is_due(north(10, NOW + 1), track, RATE)
    assert is_due(north(50, NOW + 0.5), track, RATE)  # moved far within the interval
    no_distance = GpsdSettings(publish_interval_s=10, min_distance_m=0, stationary_interval_s=30)
    assert not is_due(north(500, NOW + 5), track, no_distance)


def test_stationary_unit_reports_at_the_heartbeat_until_it_moves():
    track = Track(last_published=fix(ts=NOW + 100), slow_since=NOW)  # slow for 100 s
    assert not is_due(fix(ts=NOW + 110), track, RATE)
    assert is_due(fix(ts=NOW + 130), track, RATE)
    assert is_due(north(60, NOW + 105), track, RATE)  # moved: the distance rule
    not_yet = Track(last_published=fix(ts=NOW + 30), slow_since=NOW)  # slow for only 31 s
    assert is_due(fix(ts=NOW + 31), not_yet, RATE)


def test_stage_counts_drops_keeps_the_last_good_fix_and_thins_a_kiosk():
    stage = FixStage(FILTERS, RATE, clock=lambda: NOW + 10_000)
    published = [ts for ts in range(0, 600) if stage.offer(fix(ts=NOW + ts, speed=0.1))]
    # every second until it has stood still for 60 s, then every 30 s
    assert published[:60] == list(range(60))
    assert published[60:] == list(range(89, 600, 30))
    assert not stage.offer(fix(ts=NOW + 599))  # a duplicate
    assert not stage.offer(fix(ts=NOW + 700, lat=0, lon=0))
    assert not stage.offer(fix(ts=NOW + 20_000))  # dated from the future
    assert stage.dropped == {"duplicate": 1, "null_island": 1, "future": 1}
    assert stage.filtered == 3 and stage.last_good["ts"] == NOW + 599
