"""Nothing lost: broker and server restarts, and bad input among good, on real components."""

from __future__ import annotations

import json
import math
import time

from edge_agent.app import Agent
from edge_agent.config import GpsdSettings
from harness.clients import Terminal, UnitLink
from harness.services import nmea_slice
from harness.waiting import eventually
from server.store import Alarm, Incident, Order, Position, db
from tests.agent.conftest import agent_settings
from tests.conftest import DATA
from wire import Channel


def order_row(server, incident_id: str) -> dict:
    return server.get(f"/api/v1/incidents/{incident_id}")["orders"][0]


def test_broker_restarts_lose_no_order_and_no_ack(
    tmp_path, own_mosquitto, server_factory, gpsfake, mock_gpio, nmea_dir
) -> None:
    """A real car agent (gpsd via gpsfake, outbox) and a kiosk screen; the broker goes away
    twice: once while the order is on its way out, once while the officer answers."""
    # the replayed log's fixes carry the time they were recorded, years ago
    server = server_factory(broker=own_mosquitto, position_stale_s=10**10)
    server.add_unit("car-7")
    kiosk_token = server.add_unit("kiosk-1", "guard_post")
    server.start()
    fake = gpsfake(nmea_slice(nmea_dir / "bundg_zeus_9.log", tmp_path / "s.log", 0, 2000))
    car = Agent(
        agent_settings(
            tmp_path, own_mosquitto.url, gpsd=GpsdSettings(port=fake.port, publish_interval_s=1.0)
        )
    )
    car.start()
    kiosk = UnitLink(own_mosquitto.port, "kiosk-1")
    try:
        car_fix = eventually(
            lambda: {u["id"]: u for u in server.get("/api/v1/units")}["car-7"]["position"],
            timeout=20,
        )
        kiosk.online()
        kiosk.fix(car_fix["lat"] + 0.003, car_fix["lon"])
        eventually(lambda: {u["id"]: u for u in server.get("/api/v1/units")}["kiosk-1"]["position"])

        own_mosquitto.stop()
        screen = Terminal(server.url, kiosk_token)
        incident_id = screen.sio.call("panic", {}, namespace="/terminal")["incident_id"]
        screen.close()
        own_mosquitto.start()

        order = eventually(
            car.orders.current, timeout=30, what=f"the order; server log:\n{server.log()}"
        )
        assert order["incident_id"] == incident_id
        eventually(lambda: order_row(server, incident_id)["state"] == "delivered", timeout=20)

        own_mosquitto.stop()
        assert car.orders.accept() and car.orders.en_route()
        assert car.outbox.depth() >= 2  # the acks wait on the Pi's disk, not in paho's memory
        own_mosquitto.start()
        row = eventually(
            lambda: (
                order_row(server, incident_id)["state"] == "en_route"
                and order_row(server, incident_id)
            ),
            timeout=30,
        )
        assert row["accepted_at"] and row["delivered_at"] and row["en_route_at"]
    finally:
        kiosk.close()
        car.stop()


def test_alarms_published_while_the_server_is_down_are_all_handled_after(
    server_factory, mosquitto
) -> None:
    server = server_factory(plans_file=DATA / "one_unit_plans.toml")
    for unit_id in ("car-1", "car-2", "car-3"):
        server.add_unit(unit_id)
    server.add_unit("kiosk-1", "guard_post")
    server.start()
    links = {u: UnitLink(mosquitto.port, u) for u in ("car-1", "car-2", "car-3", "kiosk-1")}
    for i, link in enumerate(links.values()):
        link.online()
        link.fix(35.40 + i * 0.001, 116.58)
    eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")))
    assert server.stop() == 0

    alarm_ids = [links["kiosk-1"].panic() for _ in range(3)]
    links["kiosk-1"].panic(alarm_ids[0])  # and one redelivery
    backlog = [{"ts": time.time() + i, "lat": 35.41, "lon": 116.59} for i in range(50)]
    links["car-1"].send(Channel.POSITION, {"batch": backlog})
    server.start()

    # the post's three presses are one call for help, pressed three times
    [incident] = eventually(lambda: server.get("/api/v1/incidents"), timeout=20)
    eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["presses"] == 3)
    with db.connection_context():
        assert {a.alarm_id for a in Alarm.select()} == set(alarm_ids)
        # the one-unit plan's car (an incident is stored a moment before its plan's order)
        eventually(lambda: Order.select().count() == 1)
        eventually(lambda: Position.select().where(Position.unit == "car-1").count() == 51)
    for link in links.values():
        link.close()


def test_bad_input_is_rejected_counted_and_logged_while_good_messages_flow(
    server_factory, mosquitto
) -> None:
    server = server_factory()
    server.add_unit("car-1")
    server.add_unit("car-2")
    server.start()
    car, other = UnitLink(mosquitto.port, "car-1"), UnitLink(mosquitto.port, "car-2")
    stranger = UnitLink(mosquitto.port, "stranger")
    good = iter(range(1000))

    def fix() -> None:
        car.fix(35.40, 116.58, ts=1_795_000_000.0 + next(good))

    bad = [
        lambda: car.send(Channel.POSITION, b"not json"),
        lambda: car.send(Channel.POSITION, b'{"ts":"noon","lat":1,"lon":2}'),
        lambda: car.send(Channel.POSITION, b'{"ts":1,"lat":91,"lon":2}'),
        lambda: car.send(Channel.POSITION, b'{"ts":1,"lat":NaN,"lon":2}'),
        lambda: car.send(
            Channel.POSITION,
            json.dumps({"ts": 1, "lat": 1, "lon": 2, "pad": "x" * 1_000_000}).encode(),
        ),
        lambda: car.send(Channel.ALARM, b'{"alarm_id":"a","kind":"panic"}'),
        lambda: car.send(Channel.ALARM, b'{"alarm_id":"a\\u0000","ts":1,"kind":"panic"}'),
        lambda: car.send(
            Channel.ACK, b'{"order_id":"o","ts":1,"status":"declined","reason":"\\ud800"}'
        ),
        lambda: stranger.fix(35.40, 116.58),
        lambda: car.ack("an-order-of-car-2", "accepted"),
        lambda: car.send(
            Channel.ACK, b'{"order_id":"x","ts":1,"status":"accepted"}', topic_unit="car-2"
        ),
    ]
    for send_bad in bad:
        fix()
        send_bad()
    fix()

    eventually(lambda: server.metric("fieldlink_positions_stored_total") == len(bad) + 1)
    invalid = server.metric("fieldlink_rejected_total", source="mqtt", reason="invalid")
    assert invalid == 6  # the two broken alarms are alarms still, kept without what is broken
    kept = server.metric("fieldlink_rejected_total", source="mqtt", reason="alarm_part")
    assert kept == 2
    # >= 1: retained state of units from other tests on the shared broker counts here too
    assert server.metric("fieldlink_rejected_total", source="mqtt", reason="unknown_unit") >= 1
    assert server.metric("fieldlink_rejected_total", source="mqtt", reason="ack") == 2
    # each kind of rejection is logged (a few a minute: retained states other tests left on
    # the broker may take the unknown units' lines), and every one is counted
    for says in ("not JSON", "U+0000"):
        assert says in server.log()
    with db.connection_context():
        assert Position.select().count() == len(bad) + 1
        assert [i.presses for i in Incident.select()] == [2]  # one call, pressed twice
    assert server.get("/healthz")["ok"]
    assert not math.isnan(server.get("/api/v1/units")[0]["position"]["lat"])
    for link in (car, other, stranger):
        link.close()
