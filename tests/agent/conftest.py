"""Agent test fixtures: a real gpsd fed by gpsfake, a broker observer, agent settings.

Only GPIO is faked (gpiozero's MockFactory); gpsd and mosquitto are the real programs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.app import Agent
from edge_agent.clock import UnitClock
from edge_agent.config import (
    GpioSettings,
    GpsdSettings,
    HealthSettings,
    MqttSettings,
    OutboxSettings,
    PanicSettings,
    Settings,
    UnitSettings,
)
from harness.services import GpsFake

UNIT = "car-7"


def agent_settings(tmp_path: Path, broker_url: str, **sections: Any) -> Settings:
    """Settings for a test agent: a fresh unit session and outbox, plus section overrides."""
    base = Settings(
        unit=UnitSettings(id=UNIT),
        mqtt=MqttSettings(
            url=broker_url, client_id=f"agent-test-{uuid.uuid4().hex[:8]}", keepalive_s=5
        ),
        outbox=OutboxSettings(path=str(tmp_path / "outbox.db")),
        gpio=GpioSettings(pin_factory="mock"),
    )
    return dataclasses.replace(base, **sections)


def replaying_agent(
    tmp_path: Path, broker_url: str, gps_port: int, clock: UnitClock | None = None
) -> Agent:
    """An agent on a gpsfake's gpsd: 1 s reporting, a 0.2 s panic hold, health every 0.5 s."""
    settings = agent_settings(
        tmp_path,
        broker_url,
        gpsd=GpsdSettings(port=gps_port, publish_interval_s=1.0),
        panic=PanicSettings(pin=17, hold_s=0.2),
        health=HealthSettings(interval_s=0.5),
    )
    return Agent(settings, clock)


class Observer:
    """A subscriber on the broker that records what the agent publishes, and answers as the
    server does: a receipt for each alarm and ack, and for positions the newest fix time
    (`confirm=False`: no receipts, as while the server is down).

    A persistent session (fixed id, clean_start False), so across a broker restart it
    still gets what was queued for it.
    """

    def __init__(self, url: str, topic: str = "fieldlink/v1/units/#", confirm: bool = True):
        self.port = int(url.rsplit(":", 1)[1])
        self.confirm = confirm
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"observer-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)

    def start(self) -> Observer:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(5), "observer did not subscribe"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        channel = msg.topic.rsplit("/", 1)[1]
        if channel in DOWNSTREAM:  # ours and the server's; tests send garbage there too
            return
        payload = json.loads(msg.payload)
        with self._lock:
            self.messages.append((channel, payload, bool(msg.retain)))
        receipt = self.confirm and receipt_for(channel, payload)
        if receipt:
            topic = msg.topic.rsplit("/", 1)[0] + "/receipt"
            self.client.publish(topic, json.dumps({"ts": time.time(), **receipt}), qos=1)

    def fixes(self) -> list[dict]:
        """Every fix received, in arrival order, with `{"batch": [...]}` messages unpacked."""
        return [fix for payload in self.on("position") for fix in payload.get("batch", [payload])]

    def on(self, channel: str, retained: bool = False) -> list[dict]:
        """Payloads seen on `channel`: live ones, or the retained copies a new subscriber gets
        (other tests on the session broker leave a retained state behind)."""
        with self._lock:
            return [
                payload
                for name, payload, was_retained in self.messages
                if name == channel and was_retained == retained
            ]


DOWNSTREAM = frozenset({"orders", "receipt", "call"})


def receipt_for(channel: str, payload: dict) -> dict | None:
    """What the server confirms of a message once it has stored it."""
    if channel == "alarm":
        return {"alarms": [payload["alarm_id"]]}
    if channel == "ack":
        return {"acks": [{"order_id": payload["order_id"], "status": payload["status"]}]}
    if channel == "position":
        return {"positions": max(fix["ts"] for fix in payload.get("batch", [payload]))}
    return None


@pytest.fixture
def observer() -> Iterator[Callable[..., Observer]]:
    made: list[Observer] = []

    def start(url: str, confirm: bool = True) -> Observer:
        made.append(Observer(url, confirm=confirm).start())
        return made[-1]

    yield start
    for obs in made:
        obs.stop()


@pytest.fixture
def gps_replay() -> Iterator[Callable[[Path, float], GpsFake]]:
    """gpsfake at a chosen pace (seconds per NMEA line): 0.03 is about 1 Hz for bundg_zeus_9."""
    started: list[GpsFake] = []

    def start(log: Path, cycle_s: float) -> GpsFake:
        started.append(GpsFake(log, cycle_s=cycle_s).start())
        return started[-1]

    yield start
    for fake in started:
        halt(fake)


def halt(fake: GpsFake) -> None:
    """End gpsfake and its gpsd at once: it takes ~5 s to honour SIGTERM, and nothing of it
    needs a clean end."""
    if fake.proc is not None:
        os.killpg(fake.proc.pid, signal.SIGKILL)
        fake.proc.wait()
        fake.proc = None
