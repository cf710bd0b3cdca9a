"""Orders through the real broker: ack `received` at once, officer answers, dedupe, bad input."""

from __future__ import annotations

import json

import paho.mqtt.publish as mqtt_publish
import pytest

from edge_agent.orders import Orders
from edge_agent.outbox import Outbox, Uplink
from edge_agent.publisher import Publisher
from harness.waiting import eventually
from tests.agent.conftest import UNIT, agent_settings
from wire import Topics

ORDER = {
    "order_id": "ord-1",
    "incident_id": "inc-1",
    "ts": 1000.0,
    "kind": "dispatch",
    "priority": 1,
    "category": "burglary",
    "summary": "alarm at the bakery",
    "location": {"lat": 52.37, "lon": 4.89, "address": "Damrak 1"},
}


@pytest.fixture
def unit(tmp_path, mosquitto):
    """A unit's orders stage connected through its publisher, and the events it raised."""
    settings = agent_settings(tmp_path, mosquitto.url)
    uplink = Uplink(Outbox(settings.outbox.path), UNIT, Topics())
    orders = Orders(uplink)
    events: list[dict] = []
    orders.on_order = events.append
    publisher = Publisher(settings, uplink, version="test")
    publisher.on_order = orders.handle
    publisher.start()
    eventually(lambda: publisher.connected and uplink.outbox.depth() == 0, what="connected")
    yield orders, events
    publisher.stop()
    uplink.outbox.close()


def send_order(port: int, payload: bytes | dict) -> None:
    """What the server's dispatch does: one QoS 1 message on the unit's orders topic."""
    body = json.dumps(payload) if isinstance(payload, dict) else payload
    mqtt_publish.single(
        f"fieldlink/v1/units/{UNIT}/orders", body, qos=1, hostname="127.0.0.1", port=port
    )


def statuses(obs, order_id: str = "ord-1") -> list[str]:
    return [ack["status"] for ack in obs.on("ack") if ack["order_id"] == order_id]


def test_order_is_acked_received_then_accepted(mosquitto, observer, unit):
    orders, events = unit
    obs = observer(mosquitto.url)
    send_order(mosquitto.port, ORDER)
    eventually(lambda: statuses(obs) == ["received"], what="the received ack")
    assert [e["order_id"] for e in events] == ["ord-1"]

    assert orders.accept() is True  # the current order
    eventually(lambda: statuses(obs) == ["received", "accepted"], what="the accepted ack")
    assert orders.accept() is False  # pressed twice: nothing more is sent


def test_resent_order_raises_no_second_event(mosquitto, observer, unit):
    orders, events = unit
    obs = observer(mosquitto.url)
    send_order(mosquitto.port, ORDER)
    send_order(mosquitto.port, ORDER)  # the server never saw our ack and sends again
    eventually(lambda: len(statuses(obs)) == 2, what="an ack for each delivery")

    assert statuses(obs) == ["received", "received"]  # idempotent on the server
    assert len(events) == 1  # one buzz
    send_order(mosquitto.port, ORDER | {"kind": "cancel", "ts": 1001.0})
    eventually(lambda: len(events) == 2, what="the cancel, which is news")
    assert orders.current() is None


def test_bad_payloads_are_counted_and_do_not_stop_processing(mosquitto, observer, unit):
    orders, events = unit
    obs = observer(mosquitto.url)
    send_order(mosquitto.port, b"not json at all")
    send_order(mosquitto.port, {"order_id": "ord-x"})  # missing every other field
    send_order(mosquitto.port, ORDER | {"priority": 9})
    send_order(mosquitto.port, ORDER | {"order_id": "ord-2"})
    eventually(lambda: statuses(obs, "ord-2") == ["received"], what="the good order's ack")

    assert orders.rejected == 3
    assert [e["order_id"] for e in events] == ["ord-2"]


def test_a_restarted_agent_remembers_its_orders_and_the_answers_it_sent(tmp_path) -> None:
    """No broker needed: what is remembered lives in the outbox file."""
    path = tmp_path / "outbox.db"
    before = Orders(Uplink(Outbox(path), UNIT, Topics()))
    before.handle(json.dumps(ORDER).encode())
    assert before.accept()
    before.uplink.outbox.close()

    after = Orders(Uplink(Outbox(path), UNIT, Topics()))  # the agent restarted
    events: list[dict] = []
    after.on_order = events.append
    after.handle(json.dumps(ORDER).encode())  # the server re-sends it on reconnect
    assert events == []  # no second buzz
    assert after.current()["order_id"] == "ord-1"
    assert not after.accept()  # already sent before the restart
    assert after.en_route()
    after.uplink.outbox.close()
