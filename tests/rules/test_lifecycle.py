"""How orders, incidents and units move from state to state, as pure functions. No I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.rules.lifecycle import (
    ACK_TARGET,
    FINAL_ORDER_STATES,
    INCIDENT_EVENTS,
    INCIDENT_STATES,
    ORDER_PATH,
    ORDER_STATES,
    LifecycleError,
    escalation_due,
    next_incident_state,
    next_order_state,
    on_scene_too_long,
    silent_too_long,
    step_limits,
    unit_status,
)


# -- orders ------------------------------------------------------------------------------
def test_an_order_moves_forward_and_may_skip_steps() -> None:
    assert next_order_state("sent", "received") == "delivered"
    assert next_order_state("delivered", "accepted") == "accepted"
    assert next_order_state("accepted", "on_scene") == "on_scene"
    assert next_order_state("sent", "declined") == "declined"


def test_repeats_and_stale_acks_change_nothing() -> None:
    assert next_order_state("accepted", "accepted") is None
    assert next_order_state("on_scene", "en_route") is None
    assert next_order_state("accepted", "received") is None


@pytest.mark.parametrize("ended", sorted(FINAL_ORDER_STATES))
def test_received_for_an_ended_order_is_harmless(ended: str) -> None:
    # an agent acks every message it gets, a cancel included
    assert next_order_state(ended, "received") is None


@pytest.mark.parametrize(
    ("state", "status", "message"),
    [
        ("accepted", "declined", "clear it instead of declining"),
        ("declined", "accepted", "already declined"),
        ("cleared", "on_scene", "already cleared"),
        ("timed_out", "accepted", "already timed out"),
        ("cancelled", "en_route", "already cancelled"),
    ],
)
def test_impossible_acks_are_refused_with_a_reason(state, status, message) -> None:
    with pytest.raises(LifecycleError, match=message):
        next_order_state(state, status)


@given(st.lists(st.sampled_from(sorted(ACK_TARGET)), max_size=30))
def test_no_ack_sequence_moves_an_order_backwards(statuses: list[str]) -> None:
    state = "sent"
    for status in statuses:
        try:
            new = next_order_state(state, status)
        except LifecycleError:
            continue
        if new is None:
            continue
        assert state not in FINAL_ORDER_STATES
        if new != "declined":
            assert ORDER_PATH.index(new) > ORDER_PATH.index(state)
        state = new
    assert state in ORDER_STATES


def test_an_order_escalates_only_while_it_waits_for_acceptance_past_its_deadline() -> None:
    assert escalation_due("sent", 100.0, 100.0)
    assert escalation_due("delivered", 100.0, 130.0)
    assert not escalation_due("sent", 100.0, 99.9)
    assert not escalation_due("accepted", 100.0, 200.0)
    assert not escalation_due("sent", None, 200.0)  # made before deadlines existed


# -- incidents ---------------------------------------------------------------------------
def test_an_incident_goes_from_new_to_closed() -> None:
    state = "new"
    for event, expected in (
        ("order_sent", "dispatched"),
        ("arrived", "on_scene"),
        ("orders_done", "resolved"),
        ("close", "closed"),
    ):
        state = next_incident_state(state, event)
        assert state == expected


@pytest.mark.parametrize("state", ["new", "dispatched", "on_scene", "resolved", "handed_over"])
def test_it_can_be_handed_over_after_first_response(state: str) -> None:
    assert next_incident_state(state, "hand_over") == "handed_over"


@pytest.mark.parametrize("state", ["new", "dispatched", "on_scene"])
def test_closing_needs_a_resolution_or_a_handover(state: str) -> None:
    with pytest.raises(LifecycleError, match="resolve it or hand it over first"):
        next_incident_state(state, "close")


def test_a_closed_incident_takes_no_more_orders_or_updates() -> None:
    with pytest.raises(LifecycleError, match="create a new incident"):
        next_incident_state("closed", "order_sent")
    with pytest.raises(LifecycleError):
        next_incident_state("closed", "update")


def test_all_orders_done_resolves_only_an_active_incident() -> None:
    assert next_incident_state("dispatched", "orders_done") == "resolved"
    assert next_incident_state("handed_over", "orders_done") == "handed_over"
    assert next_incident_state("new", "orders_done") == "new"


@given(st.lists(st.sampled_from(sorted(INCIDENT_EVENTS)), max_size=25))
def test_no_event_sequence_reopens_a_closed_incident(events: list[str]) -> None:
    state = "new"
    for event in events:
        try:
            new = next_incident_state(state, event)
        except LifecycleError:
            continue
        assert new in INCIDENT_STATES
        if state == "closed":
            assert new == "closed"
        state = new


# -- units -------------------------------------------------------------------------------
def test_unit_status_offline_first_then_its_work_then_out_of_service() -> None:
    assert unit_status(["on_scene"], online=False, out_of_service=False) == "offline"
    assert unit_status([], True, False) == "available"
    assert unit_status(["sent"], True, False) == "dispatched"
    assert unit_status(["accepted"], True, False) == "busy"
    assert unit_status(["sent", "en_route"], True, False) == "en_route"
    assert unit_status(["delivered", "on_scene", "accepted"], True, False) == "on_scene"
    assert unit_status([], True, True) == "out_of_service"
    assert unit_status(["accepted"], True, True) == "busy"  # the order is what dispatch sees


def test_a_unit_not_heard_from_for_too_long_is_offline() -> None:
    assert not silent_too_long(None, 1000.0, 120)  # never heard: the will decides
    assert not silent_too_long(880.0, 1000.0, 120)
    assert silent_too_long(879.0, 1000.0, 120)


def test_a_unit_on_scene_past_its_calls_category_limit_is_overdue() -> None:
    limits = {"*": 2700.0, "report": 1800.0}
    assert on_scene_too_long("report", 0.0, 1800.0, limits) is None
    assert on_scene_too_long("report", 0.0, 1801.0, limits) == 1800.0
    assert on_scene_too_long("dispute", 0.0, 1801.0, limits) is None  # the rest: `*`
    assert on_scene_too_long("dispute", 0.0, 2701.0, limits) == 2700.0
    assert on_scene_too_long("dispute", None, 9999.0, limits) is None  # not there yet


def test_steps_turn_amber_then_red_by_the_arrival_norm_and_each_categorys_stay() -> None:
    limits = step_limits({"*": 2700.0, "report": 1800.0}, ("report", "dispute"))
    assert limits["arrival"] == [180.0, 300.0]
    assert limits["on_scene"] == {
        "report": [1350, 1800.0],
        "dispute": [2025, 2700.0],
        "*": [2025, 2700.0],
    }
