"""The OSRM client against a fake OSRM over loopback HTTP: answers, and every way it fails."""

from __future__ import annotations

import re
import socket
import time

import pytest

from geodesy import distance_m
from server.scale.routing import Leg, OsrmRouter, RoutingError
from tests.osrm_fake import ROAD_FACTOR, SPEED_MS, OsrmFake

SCENE = (31.23, 121.47)
UNITS = [(31.24, 121.47), (31.23, 121.49), (31.20, 121.45)]


@pytest.fixture
def osrm():
    with OsrmFake() as fake:
        yield fake


@pytest.fixture
def router(osrm):
    router = OsrmRouter(osrm.url + "/")  # a trailing slash is forgiven
    yield router
    router.close()


def test_one_table_request_gives_a_leg_per_unit_in_order(osrm, router) -> None:
    legs = router.to_point(SCENE, UNITS)
    assert len(legs) == len(UNITS)
    for (lat, lon), leg in zip(UNITS, legs, strict=True):
        metres = distance_m(lat, lon, *SCENE) * ROAD_FACTOR
        assert leg == Leg(pytest.approx(metres / SPEED_MS), pytest.approx(metres))
    assert legs[1].duration_s > legs[0].duration_s  # 0.02° of longitude > 0.01° of latitude
    [request] = osrm.requests
    assert request["path"] == (
        "/table/v1/driving/"
        "121.470000,31.240000;121.490000,31.230000;121.450000,31.200000;121.470000,31.230000"
    )
    assert request["query"] == "sources=0;1;2&destinations=3&annotations=duration,distance"
    assert request["points"] == [*UNITS, SCENE]  # parsed back to (lat, lon)


def test_no_road_is_none_and_overrides_win(osrm, router) -> None:
    osrm.overrides[UNITS[0]] = None
    osrm.overrides[UNITS[2]] = 12.0
    legs = router.to_point(SCENE, UNITS)
    assert legs[0] is None and legs[1] is not None and legs[2].duration_s == 12.0


def test_no_units_no_request_and_too_many_refused(osrm, router) -> None:
    assert router.to_point(SCENE, []) == []
    assert len(router.to_point(SCENE, [SCENE] * 100)) == 100
    with pytest.raises(ValueError, match="at most 100 origins per request, got 101"):
        router.to_point(SCENE, [SCENE] * 101)
    assert len(osrm.requests) == 1  # only the 100


def test_one_connection_is_kept_alive(osrm, router) -> None:
    router.to_point(SCENE, UNITS)
    router.to_point(SCENE, UNITS[:1])
    assert osrm.requests[0]["client"] == osrm.requests[1]["client"]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", "answered InternalError (HTTP 500): worker died"),
        ("bad", "answered NoSegment: Could not find a matching segment for any coordinate"),
        ("garbage", "answered HTTP 200 that is not JSON: '<html><body>502 proxy error"),
    ],
)
def test_failures_say_which_server_and_why(osrm, router, mode, message) -> None:
    osrm.mode = mode
    with pytest.raises(RoutingError, match="^" + re.escape(f"OSRM at {osrm.url} {message}")):
        router.to_point(SCENE, UNITS)
    osrm.mode = "ok"  # and the same router recovers
    assert len(router.to_point(SCENE, UNITS)) == 3


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ([1, 2], "JSON that is not an object"),
        ({"code": "Ok"}, "durations with None for 3 units"),
        ({"code": "Ok", "durations": [[1], [2]], "distances": [[1], [2]]}, "2 rows for 3 units"),
        ({"code": "Ok", "durations": [[1], [2], [3]]}, "distances with None for 3 units"),
        ({"code": "Ok", "durations": [[1, 2], [2], [3]]}, r"durations with \[1, 2\] for one"),
        ({"code": "Ok", "durations": [1, 2, 3]}, "durations with 1 for one unit"),
        ({"code": "Ok", "durations": [[1], ["2"], [3]]}, r"durations with \['2'\] for one"),
        ({"code": "Ok", "durations": [[1], [-2], [3]]}, r"durations with \[-2\] for one"),
        ({"code": "Ok", "durations": [[1], [True], [3]]}, r"durations with \[True\] for one"),
        ({"message": "no code"}, "answered an error: no code"),
    ],
)
def test_a_table_of_the_wrong_shape_is_refused(osrm, router, reply, message) -> None:
    osrm.reply = reply
    with pytest.raises(RoutingError, match=message):
        router.to_point(SCENE, UNITS)


def test_a_slow_server_costs_the_timeout_only(osrm) -> None:
    osrm.mode = "slow"  # 5 s, well past the timeout; closing the fake wakes it
    router = OsrmRouter(osrm.url, timeout_s=0.3)
    started = time.monotonic()
    expected = f"OSRM at {osrm.url} did not answer within 0.3 s"
    with pytest.raises(RoutingError, match=f"^{re.escape(expected)}$"):
        router.to_point(SCENE, UNITS)
    assert time.monotonic() - started < 3
    router.close()


def test_nobody_listening() -> None:
    with socket.socket() as sock:  # bound but never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        router = OsrmRouter(url, timeout_s=1.0)
        with pytest.raises(RoutingError) as err:
            router.to_point(SCENE, UNITS)
    # the cause, not urllib3's paragraph repeating the whole URL
    assert str(err.value) == f"OSRM at {url} cannot be reached (Connection refused)"
