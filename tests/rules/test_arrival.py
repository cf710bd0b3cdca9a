"""What counts as arrived: inside the radius (allowing for accuracy) for the dwell time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.rules.arrival import ArrivalRule, track_arrival, within

SCENE = (31.23, 121.47)
M_PER_DEG = 111_195.0
RULE = ArrivalRule(radius_m=50, dwell_s=5, max_accuracy_allowance_m=50)


def fix(ts: float, north_m: float, acc: float | None = None) -> dict:
    f = {"ts": ts, "lat": SCENE[0] + north_m / M_PER_DEG, "lon": SCENE[1]}
    if acc is not None:
        f["acc"] = acc
    return f


def test_within_the_radius_allowing_for_accuracy_but_not_too_much() -> None:
    assert within(fix(0, 45), *SCENE, RULE)
    assert not within(fix(0, 60), *SCENE, RULE)
    assert within(fix(0, 60, acc=15), *SCENE, RULE)  # could be 45 m away
    assert not within(fix(0, 120, acc=400), *SCENE, RULE)  # allowance capped at 50 m


def test_arrived_after_the_dwell_time_and_stamped_when_it_entered() -> None:
    entered, arrived = track_arrival(None, fix(100, 30), *SCENE, RULE)
    assert (entered, arrived) == (100, False)
    entered, arrived = track_arrival(entered, fix(103, 20), *SCENE, RULE)
    assert (entered, arrived) == (100, False)
    entered, arrived = track_arrival(entered, fix(105, 10), *SCENE, RULE)
    assert (entered, arrived) == (100, True)


def test_driving_through_does_not_count() -> None:
    entered, _ = track_arrival(None, fix(100, 30), *SCENE, RULE)
    entered, arrived = track_arrival(entered, fix(102, 200), *SCENE, RULE)
    assert (entered, arrived) == (None, False)
    entered, arrived = track_arrival(entered, fix(106, 10), *SCENE, RULE)
    assert (entered, arrived) == (106, False)


@given(st.lists(st.tuples(st.floats(0.1, 10), st.floats(0, 150)), max_size=40))
def test_an_arrival_is_stamped_between_the_first_fix_inside_and_the_confirming_one(steps) -> None:
    ts, entered = 0.0, None
    for gap, north in steps:
        ts += gap
        f = fix(ts, north)
        entered, arrived = track_arrival(entered, f, *SCENE, RULE)
        if arrived:
            assert entered is not None and entered <= ts - RULE.dwell_s + 1e-9
            assert within(f, *SCENE, RULE)
        if entered is not None:
            assert entered <= ts
