"""The order book in process: escalation, decline and replace, divert, wanted units, close and
resolve, on a temporary store with a clock the test moves and a notifier that records. No
broker, no server process, no sleeping: the end-to-end cases in `tests/e2e/` keep the wires."""

from __future__ import annotations

from typing import Any

import pytest

from server.orders import acks, dispatching, incidents, presence, timers
from server.orders.context import OrderRefused
from server.store import Event, Incident, Order
from tests.order_book import T0, order_book

SCENE = (35.405, 116.587)
NEAR = (35.406, 116.588)  # ~140 m from the scene
FAR = (35.415, 116.597)  # ~1.4 km
FARTHER = (35.430, 116.610)  # ~3.5 km


@pytest.fixture
def desk(tmp_path):
    return order_book(tmp_path)


def new_incident(desk, priority: int = 1, plan: bool = True) -> Incident:
    data: dict[str, Any] = {
        "category": "urgent",
        "priority": priority,
        "location": {"lat": SCENE[0], "lon": SCENE[1]},
        "apply_plan": plan,
    }
    return incidents.create(desk.book, data, "console:ann")


def orders_of(incident: Incident) -> dict[str, str]:
    """unit → state of each of the incident's orders."""
    return {o.unit_id: o.state for o in Order.select().where(Order.incident == incident.id)}


def alerts(desk, kind: str) -> list[dict[str, Any]]:
    return [a for a in desk.notes.of("console", "alert") if a["kind"] == kind]


def test_a_plan_sends_the_nearest_units_and_each_hears_its_order(desk) -> None:
    for unit_id, at in (("car-1", NEAR), ("car-2", FAR), ("car-3", FARTHER)):
        desk.add_unit(unit_id, at=at)
    incident = new_incident(desk)
    assert orders_of(incident) == {"car-1": "sent", "car-2": "sent"}  # */1 wants two
    assert Incident.get_by_id(incident.id).state == "dispatched"
    for unit_id in ("car-1", "car-2"):
        [to_agent] = desk.notes.of("agent", unit_id)
        [to_screen] = desk.notes.of("terminal", unit_id)
        assert to_agent["kind"] == to_screen["kind"] == "dispatch"
        assert to_screen["order_id"] == to_agent["order_id"]


def test_an_order_not_accepted_in_time_goes_to_the_next_unit(desk) -> None:
    for unit_id, at in (("car-1", NEAR), ("car-2", FAR), ("car-3", FARTHER)):
        desk.add_unit(unit_id, at=at)
    incident = new_incident(desk, priority=1)  # 30 s to accept at the normal level
    [car_1] = Order.select().where(Order.unit == "car-1")
    acks.on_ack(desk.book, "car-2", orders_of_unit("car-2").id, "accepted", "agent")
    desk.clock.advance(29)
    assert timers.tick(desk.book) == 0
    desk.clock.advance(2)
    assert timers.tick(desk.book) == 1
    assert orders_of(incident) == {"car-1": "timed_out", "car-2": "accepted", "car-3": "sent"}
    assert Order.get_by_id(car_1.id).end_reason == "not accepted in 31 s"
    [escalation] = alerts(desk, "escalation")
    assert escalation["unit_id"] == "car-1" and "sending the next unit" in escalation["message"]
    assert desk.notes.of("agent", "car-1")[-1]["kind"] == "cancel"
    assert timers.tick(desk.book) == 0  # once


def orders_of_unit(unit_id: str) -> Order:
    return Order.select().where(Order.unit == unit_id).order_by(Order.sent_at.desc()).get()


def test_a_declined_order_is_replaced_and_the_reason_kept(desk) -> None:
    for unit_id, at in (("car-1", NEAR), ("car-2", FAR), ("car-3", FARTHER)):
        desk.add_unit(unit_id, at=at)
    incident = new_incident(desk)
    acks.on_ack(desk.book, "car-1", orders_of_unit("car-1").id, "declined", "terminal", "flat tyre")
    assert orders_of(incident) == {"car-1": "declined", "car-2": "sent", "car-3": "sent"}
    assert orders_of_unit("car-1").decline_reason == "flat tyre"
    [escalation] = alerts(desk, "escalation")
    assert "flat tyre" in escalation["message"]


def test_a_busy_unit_goes_elsewhere_only_when_diverted_and_its_old_call_is_refilled(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    first = new_incident(desk, priority=3, plan=False)
    dispatching.dispatch_units(desk.book, first.id, ["car-1"], "console:ann")
    second = new_incident(desk, priority=1, plan=False)
    with pytest.raises(OrderRefused, match="send with divert to take it"):
        dispatching.dispatch_units(desk.book, second.id, ["car-1"], "console:ann")
    with pytest.raises(OrderRefused, match="already has an order for this incident"):
        dispatching.dispatch_units(desk.book, first.id, ["car-1"], "console:ann")

    desk.add_unit("car-2", at=FAR)
    dispatching.dispatch_units(desk.book, second.id, ["car-1"], "console:ann", divert=True)
    assert orders_of(second) == {"car-1": "sent"}
    assert orders_of(first) == {"car-1": "cancelled", "car-2": "sent"}  # the next unit went
    diverted = Order.get((Order.incident == first.id) & (Order.unit == "car-1"))
    assert diverted.end_reason == f"diverted to incident {second.id}"


def test_a_reassignment_refused_leaves_the_order_with_its_unit(desk) -> None:
    for unit_id, at in (("car-1", NEAR), ("car-2", FAR)):
        desk.add_unit(unit_id, at=at)
    incident, elsewhere = new_incident(desk, plan=False), new_incident(desk, plan=False)
    dispatching.dispatch_units(desk.book, incident.id, ["car-1"], "console:ann")
    dispatching.dispatch_units(desk.book, elsewhere.id, ["car-2"], "console:ann")
    order = orders_of_unit("car-1")
    with pytest.raises(OrderRefused, match="send with divert"):
        dispatching.reassign_order(desk.book, order.id, "car-2", "", "console:ann")
    assert orders_of(incident) == {"car-1": "sent"}
    dispatching.reassign_order(desk.book, order.id, "car-2", "", "console:ann", divert=True)
    assert orders_of(incident) == {"car-1": "cancelled", "car-2": "sent"}
    assert orders_of(elsewhere)["car-2"] == "cancelled"


def test_an_offline_or_out_of_service_unit_is_refused_with_what_to_do(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    desk.add_unit("car-2", at=FAR)
    incident = new_incident(desk, plan=False)
    presence.on_unit_online(desk.book, "car-1", False, T0, "link lost")
    with pytest.raises(OrderRefused, match="car-1 is offline: its link is down"):
        dispatching.dispatch_units(desk.book, incident.id, ["car-1"], "console:ann")
    presence.set_out_of_service(desk.book, "car-2", True, "console:ann")
    with pytest.raises(OrderRefused, match="car-2 is out of service"):
        dispatching.dispatch_units(desk.book, incident.id, ["car-2"], "console:ann")
    assert orders_of(incident) == {}


def test_what_a_plan_could_not_fill_is_wanted_and_sent_once_a_unit_is_free(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    incident = new_incident(desk)  # wants two, one is there
    assert orders_of(incident) == {"car-1": "sent"}
    [short] = alerts(desk, "no_unit")
    assert short["message"].startswith("1 more ") and "sent when one is" in short["message"]
    assert Incident.get_by_id(incident.id).wanted is not None

    timers.tick(desk.book)
    assert len(orders_of(incident)) == 1  # nobody new yet
    desk.add_unit("car-2", at=FAR)
    timers.tick(desk.book)
    assert orders_of(incident) == {"car-1": "sent", "car-2": "sent"}
    assert Incident.get_by_id(incident.id).wanted is None
    timers.tick(desk.book)
    assert len(orders_of(incident)) == 2


def test_a_dispatchers_own_choice_takes_the_plans_wants_off(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    incident = new_incident(desk)
    desk.add_unit("car-2", at=FAR)
    dispatching.dispatch_units(desk.book, incident.id, ["car-2"], "console:ann")
    assert Incident.get_by_id(incident.id).wanted is None
    desk.add_unit("car-3", at=FARTHER)
    timers.tick(desk.book)
    assert set(orders_of(incident)) == {"car-1", "car-2"}


def test_closing_a_resolved_call_takes_back_every_open_order_and_replaces_none(desk) -> None:
    for unit_id, at in (("car-1", NEAR), ("car-2", FAR), ("car-3", FARTHER)):
        desk.add_unit(unit_id, at=at)
    incident = new_incident(desk)
    acks.on_ack(desk.book, "car-1", orders_of_unit("car-1").id, "accepted", "agent")
    with pytest.raises(OrderRefused, match="resolve it or hand it over first"):
        incidents.close(desk.book, incident.id, "no_offence", "console:ann")
    incidents.resolve(desk.book, incident.id, "handled by phone", "console:ann")
    assert orders_of(incident) == {"car-1": "accepted", "car-2": "sent"}
    closed = incidents.close(desk.book, incident.id, "no_offence", "console:ann")
    assert closed.state == "closed" and closed.disposition == "no_offence"
    assert orders_of(incident) == {"car-1": "cancelled", "car-2": "cancelled"}
    for unit_id in ("car-1", "car-2"):
        assert desk.notes.of("agent", unit_id)[-1]["kind"] == "cancel"
    assert alerts(desk, "escalation") == []
    desk.clock.advance(600)
    timers.tick(desk.book)
    assert "car-3" not in orders_of(incident)
    with pytest.raises(OrderRefused):
        dispatching.dispatch_units(desk.book, incident.id, ["car-3"], "console:ann")


def test_the_unit_a_call_is_handed_over_to_gets_an_order_it_accepts_itself(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    desk.add_unit("station-1", "guard_post", at=FAR)
    incident = new_incident(desk, plan=False)
    dispatching.dispatch_units(desk.book, incident.id, ["car-1"], "console:ann")
    incidents.resolve(desk.book, incident.id, "", "console:ann")
    handover = {"kind": "station", "to_unit": "station-1", "reason": "lost property"}
    handed = incidents.hand_over(desk.book, incident.id, handover, "console:ann")
    assert (handed.state, handed.first_unit) == ("handed_over", "car-1")
    [to_screen] = desk.notes.of("terminal", "station-1")
    assert to_screen["kind"] == "dispatch"
    order = orders_of_unit("station-1")
    assert order.ack_deadline is None  # no emergency: it waits for the station
    desk.clock.advance(600)
    timers.tick(desk.book)
    assert orders_of(incident)["station-1"] == "sent"
    acks.on_ack(desk.book, "station-1", order.id, "accepted", "terminal")
    events = Event.select().where(Event.order_id == order.id).order_by(Event.id)
    # (the ten minutes' silence of both units is an alert beside them)
    assert [e.kind for e in events if e.kind != "unit_silent"] == ["order_sent", "order_accepted"]
    assert Incident.get_by_id(incident.id).state == "handed_over"
    with pytest.raises(OrderRefused, match="no unit 'station-9'"):
        incidents.hand_over(desk.book, incident.id, {**handover, "to_unit": "station-9"}, "x")


def test_the_incident_resolves_when_its_units_clear_not_when_they_decline(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    incident = new_incident(desk, plan=False)
    dispatching.dispatch_units(desk.book, incident.id, ["car-1"], "console:ann")
    order_id = orders_of_unit("car-1").id
    for status in ("accepted", "en_route"):
        desk.clock.advance(10)
        acks.on_ack(desk.book, "car-1", order_id, status, "terminal")
    desk.clock.advance(60)
    acks.on_ack(desk.book, "car-1", order_id, "on_scene", "terminal")
    on_scene = Incident.get_by_id(incident.id)
    assert (on_scene.state, on_scene.on_scene_at) == ("on_scene", T0 + 80)
    desk.clock.advance(300)
    acks.on_ack(desk.book, "car-1", order_id, "cleared", "terminal")
    resolved = Incident.get_by_id(incident.id)
    assert (resolved.state, resolved.resolved_at) == ("resolved", T0 + 380)
    kinds = [e.kind for e in Event.select().where(Event.incident_id == incident.id)]
    assert kinds[-1] == "order_cleared"

    other = new_incident(desk, plan=False)
    dispatching.dispatch_units(desk.book, other.id, ["car-1"], "console:ann")
    acks.on_ack(desk.book, "car-1", orders_of_unit("car-1").id, "declined", "terminal")
    assert Incident.get_by_id(other.id).state == "dispatched"  # still wants a unit


def test_a_repeated_ack_changes_nothing_and_a_stale_one_is_refused(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    desk.add_unit("car-2", at=FAR)
    incident = new_incident(desk)
    order_id = orders_of_unit("car-1").id
    acks.on_ack(desk.book, "car-1", order_id, "accepted", "agent")
    desk.clock.advance(5)
    again = acks.on_ack(desk.book, "car-1", order_id, "accepted", "terminal")
    assert again["accepted_at"] == T0
    with pytest.raises(OrderRefused, match="belongs to another unit"):
        acks.on_ack(desk.book, "car-2", order_id, "accepted", "agent")
    incidents.resolve(desk.book, incident.id, "", "console:ann")
    incidents.close(desk.book, incident.id, "no_offence", "console:ann")
    with pytest.raises(OrderRefused):
        acks.on_ack(desk.book, "car-1", order_id, "on_scene", "agent")


def helped_call(desk, category: str = "lost_person", plan: bool = False) -> Incident:
    data: dict[str, Any] = {
        "category": category,
        "priority": 3,
        "location": {"lat": SCENE[0], "lon": SCENE[1]},
        "apply_plan": plan,
        "summary": "a child lost near the east gate",
    }
    return incidents.create(desk.book, data, "console:ann")


def test_volunteers_are_offered_and_sent_only_where_the_calls_plan_names_them(desk) -> None:
    desk.add_unit("car-1", at=FAR)
    desk.add_unit("vol-1", "volunteer", at=NEAR)
    lost = helped_call(desk)
    _incident, recs = dispatching.recommend_for(desk.book, lost.id, 5)
    assert [r.unit_id for r in recs] == ["vol-1", "car-1"]  # on foot, but 140 m away

    dispute = helped_call(desk, "dispute")
    _incident, recs = dispatching.recommend_for(desk.book, dispute.id, 5)
    assert [r.unit_id for r in recs] == ["car-1"]
    with pytest.raises(OrderRefused, match="volunteers go only to calls whose response plan"):
        dispatching.dispatch_units(desk.book, dispute.id, ["vol-1"], "console:ann")
    assert [o.unit_id for o in dispatching.dispatch_units(desk.book, lost.id, ["vol-1"], "c")] == [
        "vol-1"
    ]


def test_the_built_in_plan_for_a_lost_person_sends_a_patrol_car_and_people_on_foot(desk) -> None:
    desk.add_unit("car-1", at=FAR)
    for n, at in enumerate((NEAR, FAR, FARTHER)):
        desk.add_unit(f"vol-{n}", "volunteer", at=at)
    incident = helped_call(desk, plan=True)
    assert orders_of(incident) == {
        "car-1": "sent",
        "vol-0": "sent",
        "vol-1": "sent",
        "vol-2": "sent",
    }


def test_a_call_out_reaches_everyone_on_foot_in_its_radius_who_answers_alone(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    desk.add_unit("vol-near", "volunteer", at=NEAR)
    desk.add_unit("foot-1", "foot", at=FAR)
    desk.add_unit("vol-far", "volunteer", at=FARTHER)
    incident = helped_call(desk)
    orders, reached = dispatching.call_out(desk.book, incident.id, 2000, "console:ann")
    assert {o.unit_id for o in orders} == {"vol-near", "foot-1"} and reached == 2
    assert all(o.ack_deadline is None for o in orders)  # no deadline, so no one replaces them
    again, reached = dispatching.call_out(desk.book, incident.id, 5000, "console:ann")
    assert [o.unit_id for o in again] == ["vol-far"] and reached == 3  # the others have it

    acks.on_ack(desk.book, "vol-near", orders_of_unit("vol-near").id, "declined", "t", "at work")
    acks.on_ack(desk.book, "foot-1", orders_of_unit("foot-1").id, "accepted", "terminal")
    assert orders_of(incident) == {"vol-near": "declined", "foot-1": "accepted", "vol-far": "sent"}
    desk.clock.advance(3600)
    timers.tick(desk.book)
    assert orders_of(incident)["vol-far"] == "sent"  # waits for its own answer

    dispute = helped_call(desk, "dispute")
    with pytest.raises(OrderRefused, match="names no one on foot"):
        dispatching.call_out(desk.book, dispute.id, 2000, "console:ann")
