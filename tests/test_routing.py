"""The OSRM client against a fake OSRM over loopback HTTP: answers, and every way it fails."""

from __future__ import annotations

import time

import pytest

from server.broker import free_port
from server.dispatch import distance_m
from server.routing import Leg, OsrmRouter, RoutingError
from tests.osrm_fake import ROAD_FACTOR, SPEED_MS, OsrmFake

SCENE = (31.23, 121.47)
UNITS = [(31.24, 121.47), (31.23, 121.49), (31.20, 121.45)]


@pytest.fixture
def osrm():
    with OsrmFake() as fake:
        yield fake


def test_one_table_request_gives_a_leg_per_unit_in_order(osrm) -> None:
    legs = OsrmRouter(osrm.url).to_point(SCENE, UNITS)
    for (lat, lon), leg in zip(UNITS, legs, strict=True):
        metres = distance_m(lat, lon, *SCENE) * ROAD_FACTOR
        assert leg == Leg(pytest.approx(metres / SPEED_MS), pytest.approx(metres))
    [request] = osrm.requests
    assert request["points"][-1] == SCENE  # lon,lat on the wire, parsed back
    assert request["sources"] == [0, 1, 2] and request["destinations"] == [3]


def test_no_road_is_none_and_overrides_win(osrm) -> None:
    osrm.overrides[UNITS[0]] = None
    osrm.overrides[UNITS[2]] = 12.0
    legs = OsrmRouter(osrm.url).to_point(SCENE, UNITS)
    assert legs[0] is None and legs[2].duration_s == 12.0


def test_no_units_no_request_and_too_many_refused(osrm) -> None:
    router = OsrmRouter(osrm.url)
    assert router.to_point(SCENE, []) == [] and osrm.requests == []
    with pytest.raises(ValueError, match="at most 100"):
        router.to_point(SCENE, [SCENE] * 101)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", "answered InternalError: worker died"),
        ("bad", "answered NoSegment: Could not find a matching segment"),
        ("garbage", "answered HTTP 200, not JSON"),
    ],
)
def test_failures_say_which_server_and_why(osrm, mode, message) -> None:
    osrm.mode = mode
    with pytest.raises(RoutingError, match=message) as err:
        OsrmRouter(osrm.url).to_point(SCENE, UNITS)
    assert osrm.url in str(err.value)


def test_a_slow_server_costs_the_timeout_only(osrm) -> None:
    osrm.mode, osrm.delay_s = "slow", 3.0
    started = time.monotonic()
    with pytest.raises(RoutingError, match=r"did not answer within 0\.3 s"):
        OsrmRouter(osrm.url, timeout_s=0.3).to_point(SCENE, UNITS)
    assert time.monotonic() - started < 2.5


def test_nobody_listening() -> None:
    with pytest.raises(RoutingError, match="cannot be reached"):
        OsrmRouter(f"http://127.0.0.1:{free_port()}").to_point(SCENE, UNITS)
