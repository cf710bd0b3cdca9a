"""The history a dispatcher searches (by period, state, grid, category, unit and text, a
note's Chinese words too), and two calls for the same event merged into one, nothing lost."""

from __future__ import annotations

import pytest

from server.orders import acks, alarms, dispatching, incidents, queries
from server.orders.context import OrderRefused
from server.orders.queries import IncidentSearch
from server.store import Alarm, Incident, Order
from tests.order_book import T0, order_book

SCENE = {"lat": 35.405, "lon": 116.587}
NEAR = (35.406, 116.588)


@pytest.fixture
def desk(tmp_path):
    return order_book(tmp_path)


def new(desk, category: str, summary: str, **more) -> Incident:
    body = {"category": category, "priority": 3, "location": SCENE, "summary": summary, **more}
    return incidents.create(desk.book, body, "console:ann")


def found(**search) -> list[str]:
    return [i.summary for i in queries.find_incidents(IncidentSearch(**search))]


def test_the_history_is_searched_by_period_state_category_unit_and_text(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    theft = new(desk, "report", "Bicycle stolen", location={**SCENE, "address": "North gate"})
    desk.clock.advance(3600)
    fight = new(desk, "dispute", "Two drivers arguing")
    incidents.add_note(desk.book, fight.id, "车主已离开", "console:ann")
    order = dispatch(desk, fight, "car-1")
    for step in ("accepted", "on_scene", "cleared"):
        acks.on_ack(desk.book, "car-1", order.id, step, "terminal")
    incidents.close(desk.book, fight.id, "advised both", "console:ann")

    assert found() == ["Two drivers arguing", "Bicycle stolen"]  # newest first
    assert found(since=T0 + 60) == ["Two drivers arguing"]
    assert found(until=T0 + 60) == ["Bicycle stolen"]
    assert found(state="closed") == ["Two drivers arguing"]
    assert found(state="open") == ["Bicycle stolen"]
    assert found(category="report") == ["Bicycle stolen"]
    assert found(unit="car-1") == ["Two drivers arguing"]
    assert found(unit="car-9") == []
    assert found(text="north") == ["Bicycle stolen"]  # the address, in any case
    assert found(text="车主") == ["Two drivers arguing"]  # a note's words
    assert found(text="advised") == ["Two drivers arguing"]  # the disposition
    assert found(text=theft.id) == ["Bicycle stolen"]
    assert found(category="dispute", text="bicycle") == []  # every condition holds


def dispatch(desk, incident: Incident, unit_id: str) -> Order:
    [order] = dispatching.dispatch_units(desk.book, incident.id, [unit_id], "console:ann")
    return order


def test_two_calls_for_one_event_merge_into_one_and_nothing_is_lost(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    desk.add_unit("kiosk-1", "guard_post", at=NEAR)
    kept = new(desk, "dispute", "Fight outside the bar")
    press = {"alarm_id": "a1", "ts": T0 + 5, "kind": "panic"}
    duplicate = alarms.on_alarm(desk.book, "kiosk-1", press, T0 + 5)
    assert duplicate is not None and duplicate.id != kept.id
    [order] = Order.select().where(Order.incident == duplicate.id)  # the post's plan sent it
    assert order.unit_id == "car-1"
    acks.on_ack(desk.book, "car-1", order.id, "accepted", "terminal")
    incidents.add_note(desk.book, duplicate.id, "guard sees two men", "console:ann")

    merged = incidents.merge(desk.book, duplicate.id, kept.id, "console:ann")
    assert merged.id == kept.id and merged.state == "dispatched"
    assert merged.reported_by == "kiosk-1" and merged.first_unit == "car-1"
    assert Order.get_by_id(order.id).incident_id == kept.id
    assert Alarm.get(Alarm.alarm_id == "a1").incident_id == kept.id
    gone = Incident.get_by_id(duplicate.id)
    assert (gone.state, gone.merged_into) == ("closed", kept.id)
    kinds = [e["kind"] for e in queries.timeline(merged)]
    assert {"incident_created", "alarm", "order_sent", "note", "merged", "merged_in"} <= set(kinds)
    target = desk.live.get("car-1").targets[order.id]  # watched arriving at the kept scene
    assert (target.lat, target.lon) == (SCENE["lat"], SCENE["lon"])
    update = desk.notes.of("terminal", "car-1")[-1]
    assert (update["kind"], update["incident_id"]) == ("update", kept.id)
    # the unit finishes the call it is on now
    acks.on_ack(desk.book, "car-1", order.id, "on_scene", "terminal")
    assert Incident.get_by_id(kept.id).state == "on_scene"
    with pytest.raises(OrderRefused, match="closed"):
        incidents.merge(desk.book, duplicate.id, kept.id, "console:ann")
    with pytest.raises(OrderRefused, match="itself"):
        incidents.merge(desk.book, kept.id, kept.id, "console:ann")


def test_a_call_moved_on_the_map_is_watched_arriving_at_its_new_place(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    incident = new(desk, "dispute", "Shouting")
    order = dispatch(desk, incident, "car-1")
    moved = {"lat": 35.41, "lon": 116.59}
    incidents.update(desk.book, incident.id, {"location": moved}, "console:ann")
    target = desk.live.get("car-1").targets[order.id]
    assert (target.lat, target.lon) == (moved["lat"], moved["lon"])
