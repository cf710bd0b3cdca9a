"""Every alarm answered, over the real broker and a real `fieldlink server`: no message stops
the worker, a broker that crashes before saving loses nothing the units sent, a second
instance on the same client id refuses to start, hostile Socket.IO events get answers."""

from __future__ import annotations

import dataclasses
import signal
import time
import uuid
from typing import Any

import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import UnitSettings
from edge_agent.outbox import Outbox, Uplink
from edge_agent.publisher import Publisher
from harness.clients import Terminal, UnitLink
from harness.waiting import eventually
from server.store import Alarm, Event, Incident, Order, Position, db
from tests.agent.conftest import agent_settings
from tests.wire.test_wire import KILLERS
from wire import Channel, Topics

SCENE = (35.405, 116.587)


def units_by_id(server) -> dict[str, dict]:
    return {u["id"]: u for u in server.get("/api/v1/units")}


def test_no_message_stops_the_worker_and_none_comes_back_at_a_restart(
    server_factory, mosquitto
) -> None:
    # ids of this test's own: a retained state message outlives the test on the shared broker
    car_id, other_id = f"killed-{uuid.uuid4().hex[:6]}", f"near-{uuid.uuid4().hex[:6]}"
    server = server_factory()
    server.add_unit(car_id)
    server.add_unit(other_id)
    server.start()
    car, other = UnitLink(mosquitto.port, car_id), UnitLink(mosquitto.port, other_id)
    try:
        for channel in (Channel.POSITION, Channel.ACK, Channel.STATE, Channel.HEALTH):
            for payload in KILLERS:
                car.send(channel, payload)
        car.send(Channel.STATE, b"")  # the retained garbage goes again
        other.fix(*SCENE)
        car.fix(SCENE[0] + 0.001, SCENE[1])
        eventually(
            lambda: (units_by_id(server)[car_id]["position"] or {}).get("lat") == SCENE[0] + 0.001,
            what="the fix after the killers",
        )
        alarm_id = car.panic()

        incident = eventually(lambda: server.get("/api/v1/incidents"), timeout=20)[0]
        assert incident["reported_by"] == car_id and incident["location_source"] == "unit_fix"
        detail = eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["orders"])
        assert detail[0]["unit_id"] == other_id
        health = server.get("/healthz")
        assert health["ok"] and health["stalled"] == []
        rejected = server.metric("fieldlink_rejected_total", source="mqtt", reason="invalid")
        assert rejected >= 4 * (len(KILLERS) - 1)

        server.stop()
        server.start()  # nothing of the killers was left unacknowledged, to come back now
        assert server.get("/healthz")["ok"]
        car.panic(alarm_id)  # and a redelivery of the alarm is still only the one
        other.panic()
        eventually(lambda: len(server.get("/api/v1/incidents")) == 2, timeout=20)
        assert server.get("/healthz")["ok"]
    finally:
        car.close()
        other.close()


def test_a_broker_crash_while_the_server_is_down_loses_nothing_the_units_sent(
    tmp_path, own_mosquitto, server_factory
) -> None:
    """The broker acknowledges what it has not yet saved (autosave every 30 s) and is then
    killed: the units' outboxes still hold all of it, as the server never confirmed it. The
    broker here never saved at all, so the server's own session is gone too: units that
    reconnect first send into no queue, and send again when the server says its queue was
    lost."""
    server = server_factory(broker=own_mosquitto, receipt_interval_s=0.5)
    server.add_unit("car-7")
    server.add_unit("car-8")
    server.start()
    settings_ = agent_settings(tmp_path, own_mosquitto.url)
    outbox = Outbox(settings_.outbox.path)
    publisher = Publisher(settings_, Uplink(outbox, "car-7", Topics()), version="test")
    publisher.start()
    helper = UnitLink(own_mosquitto.port, "car-8")
    try:
        helper.fix(*SCENE)
        eventually(lambda: publisher.connected and outbox.depth() == 0, what="online")
        assert server.stop() == 0

        base = time.time() - 100
        for n in range(150):
            publisher.uplink.send(
                Channel.POSITION, {"ts": base + n, "lat": SCENE[0] + n * 1e-5, "lon": SCENE[1]}
            )
        alarms = [uuid.uuid4().hex for _ in range(2)]
        for alarm_id in alarms:
            publisher.uplink.send(
                Channel.ALARM, {"alarm_id": alarm_id, "ts": time.time(), "kind": "panic"}
            )
        eventually(
            lambda: outbox.unconfirmed() == outbox.depth() == 152,
            what="the broker to take all of it (PUBACK), the server to confirm none",
        )
        own_mosquitto.kill()  # -9: what it took since its last save is gone
        own_mosquitto.start()
        server.start()

        eventually(lambda: outbox.depth() == 0, timeout=30, what="every row confirmed")
        with db.connection_context():
            assert {a.alarm_id for a in Alarm.select()} == set(alarms)
            assert Position.select().where(Position.unit == "car-7").count() >= 150
            assert Incident.select().count() == 1  # the second press joined the first
            assert Incident.get().presses == 2
            eventually(lambda: Order.select().count() >= 1)
    finally:
        helper.close()
        publisher.stop()
        outbox.close()


def test_a_second_server_on_a_live_client_id_refuses_to_start(server_factory, mosquitto) -> None:
    first = server_factory()
    first.start()
    second = server_factory(mqtt_client_id=first.env["FIELDLINK_MQTT_CLIENT_ID"])
    assert second.run_to_exit(timeout=40) == 2
    assert "another server runs with FIELDLINK_MQTT_CLIENT_ID=" in second.log()
    assert first.get("/healthz")["ok"]
    eventually(lambda: first.get("/healthz")["broker"], what="the first holds its sessions")


# -- hostile Socket.IO events ---------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
EVENTS = st.sampled_from(["ack", "panic", "sync", "connect", "disconnect", "order", "x", ""])
# Socket.IO packets as a hostile client could write them (type 2: an event; 3: an ack;
# 4: a CONNECT_ERROR, which only servers send; 5: binary)
RAW = st.sampled_from(
    [
        '2/terminal,["ack",' + "[" * 1500 + "]" * 1500 + "]",
        '2/terminal,["panic",{"ts":' + "9" * 5000 + "}]",
        '2/terminal,3["ack",{"order_id":"\\ud800","status":"accepted"}]',
        '2/terminal,[5,{"a":1}]',
        '2/terminal,["disconnect"]',
        '2/terminal,4["connect",{"token":"x"}]',
        '2/terminal,{"not":"a list"}',
        "2/terminal,[",
        '4/terminal,{"message":"x"}',
        '51-/terminal,["ack",{"_placeholder":true,"num":0}]',
        '3/terminal,99["forged ack"]',
        "9nonsense",
        "",
    ]
)


def test_hostile_terminal_events_get_answers_and_the_server_goes_on(server_factory) -> None:
    server = server_factory()
    token = server.add_unit("kiosk-9", "guard_post")
    server.add_unit("car-9")
    server.start()
    term = Terminal(server.url, token)
    sent = {"events": 0, "raw": 0}

    @settings(
        max_examples=2000,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(EVENTS, JSON, RAW, st.booleans())
    def fuzz(event: str, data: Any, raw: str, as_raw: bool) -> None:
        if as_raw:
            term.sio.eio.send(raw)
            sent["raw"] += 1
        elif event not in ("connect", "disconnect"):  # the client refuses to send these
            term.sio.emit(event, data, namespace="/terminal")
            sent["events"] += 1

    fuzz()
    assert sent["events"] > 500 and sent["raw"] > 200
    # the same connection still answers, and the unit's own events still work on it
    assert term.sio.call("sync", namespace="/terminal", timeout=10)["ok"]
    reply = term.sio.call("panic", {"alarm_id": "after-fuzz"}, namespace="/terminal", timeout=10)
    assert reply["ok"] and reply["alarm_id"] == "after-fuzz"
    health = server.get("/healthz")
    assert health["ok"] and health["stalled"] == []
    assert "Traceback" not in server.log()
    term.close()
    other = socketio.Client(reconnection=False)
    other.connect(server.url, namespaces=["/terminal"], auth={"token": token}, wait_timeout=10)
    assert other.call("sync", namespace="/terminal", timeout=10)["ok"]
    other.disconnect()


def test_a_reserved_event_sent_by_a_terminal_is_refused_and_changes_nothing(
    server_factory,
) -> None:
    server = server_factory()
    token = server.add_unit("kiosk-9", "guard_post")
    server.start()
    term = Terminal(server.url, token)
    for event in ("disconnect", "connect"):
        term.sio.eio.send(f'2/terminal,7["{event}",{{"token":"forged"}}]')
    time.sleep(0.3)
    assert term.sio.call("sync", namespace="/terminal", timeout=10)["unit_id"] == "kiosk-9"
    assert server.metric("fieldlink_rejected_total", source="socketio", reason="unknown_event") == 2
    term.close()


# -- the proof: alarms among bad payloads, across every failure the path has ----------------
class Post:
    """A guard post's agent (outbox and publisher, as on its Pi) that presses its button."""

    def __init__(self, tmp_path, url: str, unit_id: str):
        settings_ = dataclasses.replace(
            agent_settings(tmp_path / unit_id, url),
            unit=UnitSettings(id=unit_id, kind="guard_post"),
        )
        self.unit_id = unit_id
        self.outbox = Outbox(settings_.outbox.path)
        self.publisher = Publisher(settings_, Uplink(self.outbox, unit_id, Topics()), "test")
        self.publisher.start()
        self.pressed: list[str] = []

    def press(self) -> None:
        alarm = {"alarm_id": uuid.uuid4().hex, "ts": time.time(), "kind": "panic"}
        self.publisher.uplink.send(Channel.ALARM, alarm)
        self.pressed.append(alarm["alarm_id"])

    def close(self) -> None:
        self.publisher.stop()
        self.outbox.close()


def test_every_alarm_is_answered_across_bad_input_restarts_and_crashes(
    tmp_path, own_mosquitto, server_factory
) -> None:
    server = server_factory(broker=own_mosquitto, position_stale_s=10**6, receipt_interval_s=0.5)
    posts_ids = [f"post-{n}" for n in range(4)]
    for n, unit_id in enumerate(posts_ids):  # at surveyed posts, never a fix of their own
        server.add_unit(unit_id, "guard_post", home_post=f"P{n}")
    cars_ids = [f"car-{n}" for n in range(8)]  # two for each post's call
    for unit_id in [*cars_ids, "rogue"]:
        server.add_unit(unit_id)
    server.start()
    surveyed = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [SCENE[1], SCENE[0] + n * 0.003]},
                "properties": {"id": f"P{n}", "name": f"Post {n}", "tier_min": 1},
            }
            for n in range(4)
        ],
    }
    assert server.call("PUT", "/api/v1/posts", surveyed)[0] == 200
    posts = [Post(tmp_path, own_mosquitto.url, unit_id) for unit_id in posts_ids]
    cars = [UnitLink(own_mosquitto.port, unit_id) for unit_id in cars_ids]
    rogue = UnitLink(own_mosquitto.port, "rogue")
    rogue_alarms = 0

    def hostile_burst() -> None:
        nonlocal rogue_alarms
        eventually(rogue.client.is_connected, timeout=20, what="the rogue back on the broker")
        for payload in KILLERS:
            for channel in (Channel.POSITION, Channel.ACK, Channel.HEALTH):
                rogue.send(channel, payload)
        for payload in (b"{", b'{"alarm_id":"x","ts":"noon","fix":{"lat":95}}', KILLERS[0]):
            rogue.send(Channel.ALARM, payload)  # still alarms: each is answered too
            rogue_alarms += 1

    def press_all() -> None:
        for post in posts:
            post.press()

    try:
        for n, car in enumerate(cars):
            car.fix(SCENE[0] + n * 0.002, SCENE[1])
        eventually(lambda: all(p.publisher.connected for p in posts), what="posts online")

        hostile_burst()
        press_all()

        own_mosquitto.stop()  # a broker restart: presses wait in the posts' outboxes
        press_all()
        own_mosquitto.start()
        eventually(lambda: all(p.publisher.connected for p in posts), timeout=20)
        hostile_burst()

        press_all()
        eventually(lambda: all(p.outbox.unconfirmed() == 0 for p in posts), timeout=30)
        server.stop()  # the broker now takes presses the server cannot confirm...
        press_all()
        eventually(lambda: all(p.outbox.unconfirmed() == p.outbox.depth() > 0 for p in posts))
        own_mosquitto.kill()  # ...and dies before saving them
        own_mosquitto.start()
        server.start()
        hostile_burst()

        press_all()
        server.stop(signal.SIGKILL)  # the server dies in the middle of handling them
        server.start()

        eventually(
            lambda: all(p.outbox.depth() == 0 for p in posts),
            timeout=60,
            what="every press confirmed by the server",
        )
        pressed = {(p.unit_id, alarm_id) for p in posts for alarm_id in p.pressed}
        with db.connection_context():
            stored = {(a.unit_id, a.alarm_id) for a in Alarm.select()}
            assert pressed <= stored  # no press lost
            # the rogue sent three unreadable alarms three times: each is one alarm
            assert Alarm.select().where(Alarm.unit == "rogue").count() == 3
            answered = eventually(lambda: _answered(), timeout=20, what="an order or an alert")
        assert len(pressed) == 20 and answered["unanswered"] == []
        assert server.get("/healthz")["ok"]
        print(f"\npresses {len(pressed)} + {rogue_alarms} unreadable; {answered}")
    finally:
        for post in posts:
            post.close()
        for link in [*cars, rogue]:
            link.close()


def _answered() -> dict[str, Any] | None:
    """Every alarm's incident, and whether each has an order or an alert in its timeline."""
    incidents = {a.incident_id for a in Alarm.select() if a.kind == "panic"}
    with_order = {o.incident_id for o in Order.select(Order.incident)}
    alerted = {
        e.incident_id
        for e in Event.select().where(Event.kind.in_(("no_unit", "no_location", "escalation")))
    }
    unanswered = sorted(incidents - with_order - alerted)
    if None in incidents or unanswered:
        return None
    return {
        "incidents": len(incidents),
        "with_order": len(incidents & with_order),
        "alert_only": len(incidents - with_order),
        "unanswered": unanswered,
    }
