"""Dispatch decisions as pure functions: no broker, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.dispatch import (
    ACK_TARGET,
    ORDER_PATH,
    AckRejected,
    Candidate,
    distance_m,
    next_order_state,
    rank_units,
    unit_status,
)

HERE = (35.405, 116.587)


def car(unit_id: str, dlat: float, **kw) -> Candidate:
    return Candidate(unit_id, kw.pop("kind", "patrol_car"), HERE[0] + dlat, HERE[1], **kw)


def test_distance_is_a_great_circle() -> None:
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-3)
    assert distance_m(*HERE, *HERE) == 0


def test_nearest_available_patrol_unit_comes_first_and_offline_ones_last() -> None:
    ranked = rank_units(
        *HERE,
        [
            car("far", 0.02),
            car("near", 0.001),
            car("busy", 0.0001, available=False),
            car("offline", 0.0002, online=False),
            car("kiosk", 0.0, kind="guard_post"),
            car("walker", 0.0, kind="foot"),
            car("bike", 0.005, kind="motorcycle"),
        ],
    )
    assert [r.unit_id for r in ranked] == ["near", "bike", "far", "offline"]


def test_excluded_units_are_passed_over() -> None:
    ranked = rank_units(*HERE, [car("a", 0.001), car("b", 0.002)], exclude=frozenset({"a"}))
    assert [r.unit_id for r in ranked] == ["b"]


def test_order_moves_forward_along_its_path() -> None:
    assert next_order_state("sent", "received") == "delivered"
    assert next_order_state("delivered", "accepted") == "accepted"
    assert next_order_state("accepted", "on_scene") == "on_scene"  # skipping en_route is fine
    assert next_order_state("sent", "declined") == "declined"


def test_repeated_and_stale_acks_change_nothing() -> None:
    assert next_order_state("accepted", "accepted") is None
    assert next_order_state("on_scene", "en_route") is None
    assert next_order_state("accepted", "received") is None


@pytest.mark.parametrize(
    ("state", "status"),
    [("accepted", "declined"), ("declined", "accepted"), ("cleared", "on_scene")],
)
def test_impossible_acks_are_rejected(state: str, status: str) -> None:
    with pytest.raises(AckRejected):
        next_order_state(state, status)


@given(st.lists(st.sampled_from(sorted(ACK_TARGET)), max_size=30))
def test_any_ack_sequence_never_moves_an_order_backwards(statuses: list[str]) -> None:
    state = "sent"
    for status in statuses:
        try:
            new = next_order_state(state, status)
        except AckRejected:
            continue
        if new is None:
            continue
        if new != "declined":
            assert ORDER_PATH.index(new) > ORDER_PATH.index(state)
        state = new
    assert state in (*ORDER_PATH, "declined")


def test_unit_status_follows_its_most_advanced_order() -> None:
    assert unit_status([]) == "available"
    assert unit_status(["sent"]) == "dispatched"
    assert unit_status(["accepted"]) == "busy"
    assert unit_status(["sent", "on_scene"]) == "on_scene"
