"""The whole path on real components: a panic at a guard post becomes an order on the nearest
patrol car's terminal, and the officer's acks move it along, under both async modes."""

from __future__ import annotations

import pytest

from harness.clients import Terminal, UnitLink
from harness.waiting import eventually
from tests.conftest import DATA

KIOSK = (35.4050, 116.5870)


@pytest.fixture
def city(server_factory, mosquitto, async_mode):
    """A server with a guard kiosk and three patrol cars at known distances, all online."""
    server = server_factory(async_mode, plans_file=DATA / "one_unit_plans.toml")
    tokens = {u: server.add_unit(u) for u in ("car-near", "car-mid", "car-far")}
    tokens["kiosk-1"] = server.add_unit("kiosk-1", "guard_post")
    server.start()
    links = {u: UnitLink(mosquitto.port, u) for u in tokens}
    for unit_id, dlat in (
        ("car-near", 0.002),
        ("car-mid", 0.01),
        ("car-far", 0.03),
        ("kiosk-1", 0.0),
    ):
        links[unit_id].online()
        links[unit_id].fix(KIOSK[0] + dlat, KIOSK[1])
    eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")))
    yield server, tokens, links
    for link in links.values():
        link.close()


def incident_of(server, alarm_index: int = 0) -> dict:
    incidents = eventually(lambda: server.get("/api/v1/incidents"))
    return server.get(f"/api/v1/incidents/{incidents[alarm_index]['id']}")


def test_panic_reaches_the_nearest_terminal_and_acks_are_timed(city) -> None:
    server, tokens, links = city
    terminal = Terminal(server.url, tokens["car-near"])
    links["kiosk-1"].panic()

    assert terminal.received.wait(10), server.log()
    order = terminal.orders[0]
    assert order["unit_id"] == "car-near"
    assert order["category"] == "urgent" and order["priority"] == 1
    assert order["location"]["lat"] == pytest.approx(KIOSK[0])
    # the same order also went to the car's agent over MQTT
    eventually(lambda: links["car-near"].orders)
    assert links["car-near"].orders[0]["order_id"] == order["order_id"]

    for status in ("accepted", "en_route", "on_scene", "cleared"):
        reply = terminal.ack(order["order_id"], status)
        assert reply["ok"] is True, reply
        assert reply["order"]["state"] == status

    detail = incident_of(server)
    [stored] = detail["orders"]
    times = [
        stored[f"{s}_at"]
        for s in ("sent", "delivered", "accepted", "en_route", "on_scene", "cleared")
    ]
    assert all(times) and times == sorted(times), stored
    assert detail["state"] == "resolved"
    assert detail["on_scene_at"] >= detail["dispatched_at"] >= detail["created_at"]
    terminal.close()


def test_a_busy_unit_is_not_chosen_again_until_it_clears(city) -> None:
    server, tokens, links = city
    terminal = Terminal(server.url, tokens["car-near"])
    links["kiosk-1"].panic()
    assert terminal.received.wait(10)
    first = terminal.orders[0]
    assert terminal.ack(first["order_id"], "accepted")["ok"]

    # another call near the same post (the post's own second press would join its first)
    server.call(
        "POST",
        "/api/v1/incidents",
        {
            "category": "urgent",
            "priority": 1,
            "location": {"lat": KIOSK[0], "lon": KIOSK[1]},
            "apply_plan": True,
        },
    )
    second = eventually(
        lambda: (
            len(server.get("/api/v1/incidents")) == 2
            and [
                o
                for i in server.get("/api/v1/incidents")
                for o in server.get(f"/api/v1/incidents/{i['id']}")["orders"]
                if o["order_id"] != first["order_id"]
            ]
        )
    )
    assert second[0]["unit_id"] == "car-mid"

    assert terminal.ack(first["order_id"], "cleared")["ok"]
    units = {u["id"]: u for u in server.get("/api/v1/units")}
    assert units["car-near"]["status"] == "available"
    assert units["car-mid"]["status"] == "dispatched"
    terminal.close()


def test_acks_over_mqtt_are_idempotent_and_a_redelivered_alarm_makes_no_second_incident(
    city,
) -> None:
    server, _tokens, links = city
    alarm_id = links["kiosk-1"].panic()
    links["kiosk-1"].panic(alarm_id)  # the agent's outbox resends after a lost PUBACK
    order = eventually(lambda: links["car-near"].orders)[0]
    for status in ("received", "accepted", "accepted", "received", "en_route"):
        links["car-near"].ack(order["order_id"], status)

    eventually(lambda: incident_of(server)["orders"][0]["state"] == "en_route")
    assert len(server.get("/api/v1/incidents")) == 1
    assert server.metric("fieldlink_duplicates_total", channel="alarm") == 1
    assert server.metric("fieldlink_duplicates_total", channel="ack") >= 2


def test_a_declined_order_goes_to_the_next_unit(city) -> None:
    server, tokens, links = city
    terminal = Terminal(server.url, tokens["car-near"])
    links["kiosk-1"].panic()
    assert terminal.received.wait(10)
    reply = terminal.ack(terminal.orders[0]["order_id"], "declined", reason="flat tyre")
    assert reply["ok"] and reply["order"]["decline_reason"] == "flat tyre"
    orders = eventually(
        lambda: len(incident_of(server)["orders"]) == 2 and incident_of(server)["orders"]
    )
    assert [o["unit_id"] for o in orders] == ["car-near", "car-mid"]
    assert terminal.ack(terminal.orders[0]["order_id"], "accepted")["ok"] is False
    terminal.close()


def test_terminal_refusals(city) -> None:
    server, tokens, links = city
    import socketio

    refused = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(
            server.url, namespaces=["/terminal"], auth={"token": "forged"}, wait_timeout=5
        )
    far = Terminal(server.url, tokens["car-far"])
    links["kiosk-1"].panic()
    order = eventually(lambda: links["car-near"].orders)[0]
    # a terminal may touch only its own unit's orders
    reply = far.ack(order["order_id"], "accepted")
    assert reply == {
        "ok": False,
        "error": f"order {order['order_id']} belongs to another unit",
        "reason": "order_of_another_unit",  # for the screen to word in its language
        "params": {"order": order["order_id"]},
    }
    assert far.ack(order["order_id"], "teleported")["ok"] is False
    assert far.sio.call("ack", "not an object", namespace="/terminal")["ok"] is False
    # text that cannot be stored is refused with the reason, whether JSON carries it as an
    # escape the fast decoder takes (NUL) or one only the standard library takes (a lone
    # surrogate)
    for reason, refused_char in (("late\x00", "U+0000"), ("half \ud800", "U+D800")):
        reply = far.ack(order["order_id"], "declined", reason=reason)
        assert reply["ok"] is False and f"control character {refused_char}" in reply["error"]
    assert server.metric("fieldlink_rejected_total", source="socketio", reason="auth") == 1
    far.close()
    # the device token may also come in the handshake's URL, as the terminal page's link has it
    by_url = socketio.Client(reconnection=False)
    by_url.connect(
        f"{server.url}?token={tokens['car-far']}", namespaces=["/terminal"], wait_timeout=5
    )
    assert by_url.call("sync", namespace="/terminal", timeout=10)["unit_id"] == "car-far"
    by_url.disconnect()


def test_pending_orders_are_resent_to_a_reconnecting_terminal_and_agent(city) -> None:
    server, tokens, links = city
    links["kiosk-1"].panic()
    order = eventually(lambda: links["car-near"].orders)[0]
    terminal = Terminal(server.url, tokens["car-near"])  # connects after the order was sent
    assert terminal.received.wait(10)
    assert terminal.orders[0]["order_id"] == order["order_id"]

    links["car-near"].orders.clear()
    links["car-near"].online()  # the agent is back from a link loss
    eventually(lambda: links["car-near"].orders)
    assert links["car-near"].orders[0]["order_id"] == order["order_id"]
    assert eventually(lambda: incident_of(server)["orders"][0]["delivered_at"])
    terminal.close()


def test_the_kiosk_screen_panic_button_dispatches_like_the_hardware_button(city) -> None:
    server, tokens, links = city
    screen = Terminal(server.url, tokens["kiosk-1"])
    reply = screen.sio.call("panic", {}, namespace="/terminal", timeout=10)
    assert reply["ok"] and reply["incident_id"]
    order = eventually(lambda: links["car-near"].orders)[0]
    assert order["incident_id"] == reply["incident_id"]
    screen.close()
