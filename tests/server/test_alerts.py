"""Alerts as a list a dispatcher works through: kept in the store, in the incident's
timeline, acknowledged once by whoever saw to it, and settled when the incident closes."""

from __future__ import annotations

import pytest

from server.orders import acks, alerts, incidents, presence, timers
from server.orders.context import OrderRefused
from server.store import Event, Incident, Order
from tests.order_book import order_book

SCENE = {"lat": 35.405, "lon": 116.587}
NEAR = (35.406, 116.588)


@pytest.fixture
def desk(tmp_path):
    return order_book(tmp_path)


def kinds() -> list[str]:
    return [a["kind"] for a in alerts.open_alerts()]


def on_call(desk, category: str, *steps: str) -> tuple[Incident, Order]:
    """car-1 sent by a call's plan, its order acknowledged through `steps`."""
    desk.add_unit("car-1", at=NEAR)
    body = {"category": category, "priority": 3, "location": SCENE, "apply_plan": True}
    incident = incidents.create(desk.book, body, "console:ann")
    [order] = Order.select().where(Order.incident == incident.id)
    for step in steps:
        acks.on_ack(desk.book, "car-1", order.id, step, "agent")
    return incident, order


def test_each_alert_is_kept_until_acknowledged_and_the_timeline_says_who(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    incident = incidents.create(
        desk.book,
        {"category": "urgent", "priority": 1, "location": SCENE, "apply_plan": True},
        "console:ann",
    )  # */1 wants two: one more than there is
    [no_unit] = alerts.open_alerts()
    assert no_unit["kind"] == "no_unit" and no_unit["incident_id"] == incident.id
    assert no_unit["refs"] == {"missing": 1, "kinds": "motorcycle/patrol_car"}
    [pushed] = desk.notes.of("console", "alert")
    assert pushed["id"] == no_unit["id"]
    desk.clock.advance(40)  # car-1 does not accept in time
    timers.tick(desk.book)
    # car-1 is replaced by none: another unit is wanted
    assert kinds() == ["no_unit", "escalation", "no_unit"]
    escalation = alerts.open_alerts()[1]
    assert escalation["unit_id"] == "car-1" and escalation["refs"] == {"state": "timed_out"}

    [done] = alerts.acknowledge(desk.book, [no_unit["id"]], "dispatcher:bo")
    assert done["acknowledged_by"] == "dispatcher:bo" and kinds() == ["escalation", "no_unit"]
    [gone] = desk.notes.of("console", "alerts_acknowledged")
    assert gone["alerts"][0]["id"] == no_unit["id"] and gone["by"] == "dispatcher:bo"
    assert alerts.acknowledge(desk.book, [no_unit["id"]], "dispatcher:cy") == []  # once
    [ack] = Event.select().where(Event.kind == "alert_acknowledged")
    assert ack.actor == "dispatcher:bo" and ack.incident_id == incident.id
    with pytest.raises(OrderRefused, match="no alert 999"):
        alerts.acknowledge(desk.book, [999], "dispatcher:bo")


def test_a_unit_silent_on_a_call_is_an_alert_and_closing_the_call_settles_its_alerts(
    desk,
) -> None:
    incident, order = on_call(desk, "dispute", "accepted")
    presence.on_unit_online(desk.book, "car-1", False, desk.clock(), why="missing heartbeats")
    [silent] = alerts.open_alerts()
    assert silent["kind"] == "unit_silent" and silent["unit_id"] == "car-1"
    assert silent["order_id"] == order.id and silent["incident_id"] == incident.id
    presence.on_unit_online(desk.book, "car-1", False, desk.clock())  # still offline: once
    assert kinds() == ["unit_silent"]
    incidents.resolve(desk.book, incident.id, "", "console:ann")
    incidents.close(desk.book, incident.id, "no_offence", "console:ann")
    assert kinds() == []
    [settled] = Event.select().where(Event.kind == "alert_settled")
    assert settled.actor == "console:ann"


def test_a_unit_on_scene_past_its_categorys_limit_is_alerted_once(desk) -> None:
    _incident, order = on_call(desk, "report", "accepted", "on_scene")
    desk.live.heard("car-1", desk.clock.advance(30 * 60))  # a report's limit: 30 min
    timers.tick(desk.book)
    assert kinds() == []
    desk.live.heard("car-1", desk.clock.advance(61))
    timers.tick(desk.book)
    [long] = alerts.open_alerts()
    assert long["kind"] == "on_scene_long" and long["order_id"] == order.id
    assert long["refs"] == {"minutes": 31, "limit_min": 30}
    timers.tick(desk.book)
    assert kinds() == ["on_scene_long"]  # once
