"""`fieldlink demo` end to end, and the embedded amqtt broker it falls back to."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from mqtt_link import (
    BrokerAddress,
    SessionOptions,
    connect_persistent,
    negotiate_protocol,
    new_client,
)
from server.sim.local_broker import EmbeddedBroker, free_port, local_broker

FIELDLINK = Path(sys.executable).parent / "fieldlink"
ACCEPTED_OR_LATER = {"accepted", "en_route", "on_scene", "cleared"}


# -- the embedded broker -----------------------------------------------------------------
@pytest.fixture
def embedded(tmp_path) -> EmbeddedBroker:
    broker = local_broker(tmp_path, prefer="embedded")
    yield broker
    broker.stop()


class Subscriber:
    """A persistent 3.1.1 session built as the server builds its own."""

    def __init__(self, broker: EmbeddedBroker, topic: str):
        self.address = BrokerAddress.parse(broker.url)
        self.options = SessionOptions(client_id="test-sub", protocol=broker.protocol)
        self.topic = topic
        self.got: list[bytes] = []
        self.subscribed = threading.Event()

    def connect(self) -> mqtt.Client:
        self.subscribed.clear()
        client = new_client(self.address, self.options)
        client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_message = lambda _c, _u, m: self.got.append(m.payload)
        connect_persistent(client, self.address, self.options)
        client.loop_start()
        assert self.subscribed.wait(5)
        return client


def publish_all(url: str, topic: str, count: int) -> None:
    address = BrokerAddress.parse(url)
    options = SessionOptions(client_id="test-pub", protocol="3.1.1")
    client = new_client(address, options)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    connect_persistent(client, address, options)
    client.loop_start()
    assert connected.wait(5)
    infos = [client.publish(topic, f"{i}".encode(), qos=1) for i in range(count)]
    for info in infos:
        info.wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_embedded_broker_delivers_every_qos1_message_over_311(embedded):
    assert embedded.protocol == "3.1.1"
    subscriber = Subscriber(embedded, "fieldlink/v1/units/+/position")
    client = subscriber.connect()
    publish_all(embedded.url, "fieldlink/v1/units/car-01/position", 200)
    assert wait_for(lambda: len(subscriber.got) >= 200, 10), f"got {len(subscriber.got)}"
    assert subscriber.got == [f"{i}".encode() for i in range(200)]
    client.disconnect()
    client.loop_stop()


def test_embedded_broker_keeps_a_persistent_session_while_its_client_is_away(embedded):
    """What the server's ingest relies on: messages for it are queued while it restarts."""
    subscriber = Subscriber(embedded, "fieldlink/v1/units/+/alarm")
    client = subscriber.connect()
    client.disconnect()
    client.loop_stop()
    publish_all(embedded.url, "fieldlink/v1/units/kiosk-01/alarm", 20)
    client = subscriber.connect()
    assert wait_for(lambda: len(subscriber.got) >= 20, 10), f"got {len(subscriber.got)}"
    client.disconnect()
    client.loop_stop()


def test_embedded_broker_refuses_v5_so_clients_fall_back_and_stop_frees_the_port(embedded):
    address = BrokerAddress.parse(embedded.url)
    assert negotiate_protocol(address, "5") == "3.1.1"
    embedded.stop()
    EmbeddedBroker(embedded.port).start().stop()  # the port is free again, and reusable


# -- the demo, end to end -------------------------------------------------------------------
def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (the demo's children run in their own sessions)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def signed_in(base: str, banner: str) -> requests.Session | None:
    """The console's login with the account the demo printed, as a dispatcher's browser."""
    printed = re.search(r"sign in: (\S+) / (\S+)\)", banner)
    if printed is None:
        return None  # not printed yet
    browser = requests.Session()
    form = browser.get(f"{base}/login", timeout=5).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    name, password = printed.groups()
    reply = browser.post(
        f"{base}/login", data={"name": name, "password": password, "csrf_token": csrf}, timeout=5
    )
    assert reply.ok and reply.url == f"{base}/", reply.text
    return browser


def an_accepted_order(browser: requests.Session, base: str) -> dict | None:
    for incident in browser.get(f"{base}/api/v1/incidents", timeout=5).json():
        detail = browser.get(f"{base}/api/v1/incidents/{incident['id']}", timeout=5).json()
        for order in detail["orders"]:
            if order["state"] in ACCEPTED_OR_LATER:
                return order
    return None


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_dispatches_and_officers_accept_then_sigint_stops_everything(tmp_path, broker):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "demo.out"
    command = [str(FIELDLINK), "demo", "--port", str(port), "--cars", "4", "--kiosks", "2"]
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [*command, "--panic-every", "3"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FIELDLINK_DEMO_BROKER": broker},
        )
    children: set[int] = set()
    try:
        order, browser = None, None
        deadline = time.monotonic() + 40
        while order is None and time.monotonic() < deadline and demo.poll() is None:
            time.sleep(1)
            children |= descendants(demo.pid)
            browser = browser or signed_in(base, output.read_text())
            order = browser and an_accepted_order(browser, base)
        assert order is not None, output.read_text()
        assert order["accepted_at"] is not None or order["state"] != "accepted"
        assert children, "the demo started no server"
        text = output.read_text()
        assert f"{base}/terminal?token=" in text and f"console   {base}/" in text
        assert f"{base}/kiosk?token=" in text
        # the fleet drives over central Helsinki, whose real street map the console draws
        centre = {"west": 24.94, "south": 60.165, "east": 24.95, "north": 60.175, "zoom": 16}
        drawn = browser.get(f"{base}/api/v1/map", params=centre, timeout=5).json()
        assert "Mannerheimintie" in {f["properties"]["name"] for f in drawn["features"]}
        units = browser.get(f"{base}/api/v1/units", timeout=5).json()
        assert all(abs(u["position"]["lat"] - 60.171) < 0.01 for u in units if u["position"])

        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=20) == 0, output.read_text()
        assert wait_for(lambda: not any(alive(p) for p in children), 2), [
            p for p in children if alive(p)
        ]
    finally:
        for pid in [demo.pid, *children]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.wait()
