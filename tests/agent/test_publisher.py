"""The publisher against a real mosquitto: exactly once, retained state and will, no loss."""

from __future__ import annotations

import socket

import pytest

from edge_agent.outbox import Outbox, Uplink
from edge_agent.publisher import Publisher
from harness.waiting import eventually
from tests.agent.conftest import UNIT, agent_settings
from wire import Channel, Topics


@pytest.fixture
def make_publisher(tmp_path):
    made: list[Publisher] = []

    def make(url: str) -> Publisher:
        settings = agent_settings(tmp_path, url)
        outbox = Outbox(settings.outbox.path)
        publisher = Publisher(settings, Uplink(outbox, UNIT, Topics()), version="test")
        publisher.start()
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.stop()
        publisher.outbox.close()


def _fix(ts: float) -> dict:
    return {"ts": ts, "lat": 52.0, "lon": 5.0}


def test_each_message_arrives_once_and_leaves_the_outbox(mosquitto, observer, make_publisher):
    obs = observer(mosquitto.url)
    pub = make_publisher(mosquitto.url)
    for ts in range(1, 301):
        pub.uplink.send(Channel.POSITION, _fix(ts))
    pub.uplink.send(Channel.ALARM, {"alarm_id": "a1", "ts": 1, "kind": "panic"})

    eventually(lambda: len(obs.fixes()) >= 300 and obs.on("alarm"), what="300 fixes")
    eventually(lambda: pub.outbox.depth() == 0, what="an empty outbox")

    assert [f["ts"] for f in obs.fixes()] == list(range(1, 301))  # in order, none twice
    assert [a["alarm_id"] for a in obs.on("alarm")] == ["a1"]
    state = obs.on("state")[0]
    assert state["online"] is True and state["kind"] == "patrol_car" and state["version"] == "test"


def test_retained_state_and_will(mosquitto, observer, make_publisher):
    pub = make_publisher(mosquitto.url)
    eventually(lambda: pub.connected and pub.outbox.depth() == 0, what="online state sent")

    late = observer(mosquitto.url)  # subscribes after the fact: sees the retained state
    eventually(lambda: late.on("state", retained=True), what="retained state")
    assert [s["online"] for s in late.on("state", retained=True)] == [True]

    pub._client.socket().shutdown(socket.SHUT_RDWR)  # the link dies without a DISCONNECT
    eventually(
        lambda: [s["online"] for s in late.on("state")][-2:] == [False, True],
        what="the will, then online again after paho's reconnect",
    )


def test_messages_queued_while_the_broker_is_down_arrive_after_restart(
    own_mosquitto, observer, make_publisher
):
    obs = observer(own_mosquitto.url)
    pub = make_publisher(own_mosquitto.url)
    eventually(lambda: pub.connected and pub.outbox.depth() == 0, what="connected")

    own_mosquitto.stop()
    eventually(lambda: not pub.connected, what="the publisher to notice")
    for ts in range(1, 51):
        pub.uplink.send(Channel.POSITION, _fix(ts))
    pub.uplink.send(Channel.ALARM, {"alarm_id": "down-1", "ts": 60, "kind": "panic"})
    assert pub.outbox.depth() == 51  # all safe on disk, none lost with the link

    own_mosquitto.start()
    eventually(
        lambda: len(obs.fixes()) >= 50 and obs.on("alarm"),
        timeout=20,
        what="the backlog after the restart",
    )
    eventually(lambda: pub.outbox.depth() == 0, what="an empty outbox")

    assert [f["ts"] for f in obs.fixes()] == list(range(1, 51))
    assert [len(p["batch"]) for p in obs.on("position")] == [50]  # one message, one PUBACK
    channels = [name for name, _, _ in obs.messages if name in ("alarm", "position")]
    assert channels[0] == "alarm"  # the alarm jumped the backlog
