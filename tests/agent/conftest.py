"""Agent test fixtures: a real gpsd fed by gpsfake, a broker observer, agent settings.

Only GPIO is faked (gpiozero's MockFactory); gpsd and mosquitto are the real programs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config import MqttSettings, OutboxSettings, Settings, UnitSettings
from server.broker import free_port, wait_for_port

UNIT = "car-7"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


class GpsFake:
    """gpsfake playing an NMEA log once into its own gpsd on a loopback port."""

    def __init__(self, log: Path, port: int | None = None, cycle_s: float = 0.01):
        self.log, self.port, self.cycle_s = log, port or free_port(), cycle_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> GpsFake:
        self.proc = subprocess.Popen(
            ["gpsfake", "-q", "-P", str(self.port), "-c", str(self.cycle_s), "-1", str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends gpsfake and its gpsd
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def nmea_slice(source: Path, dest: Path, start: int, stop: int) -> Path:
    """Lines [start, stop) of an NMEA log, so a replay takes seconds, not minutes."""
    dest.write_text("".join(source.read_text().splitlines(keepends=True)[start:stop]))
    return dest


@pytest.fixture
def gpsfake() -> Iterator[Callable[..., GpsFake]]:
    """Factory of started GpsFake instances; every one is stopped after the test."""
    started: list[GpsFake] = []

    def start(log: Path, port: int | None = None) -> GpsFake:
        fake = GpsFake(log, port).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def mock_gpio() -> Iterator[MockFactory]:
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = None


def agent_settings(tmp_path: Path, broker_url: str, **sections: Any) -> Settings:
    """Settings for a test agent: a fresh unit session and outbox, plus section overrides."""
    base = Settings(
        unit=UnitSettings(id=UNIT),
        mqtt=MqttSettings(
            url=broker_url, client_id=f"agent-test-{uuid.uuid4().hex[:8]}", keepalive_s=5
        ),
        outbox=OutboxSettings(path=str(tmp_path / "outbox.db")),
    )
    return dataclasses.replace(base, **sections)


class Observer:
    """A subscriber on the broker that records what the agent publishes (the server's view).

    A persistent session (fixed id, clean_start False), so across a broker restart it
    still gets what was queued for it.
    """

    def __init__(self, url: str, topic: str = "fieldlink/v1/units/#"):
        self.port = int(url.rsplit(":", 1)[1])
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
        if channel == "orders":  # downstream, and tests send garbage there on purpose
            return
        with self._lock:
            self.messages.append((channel, json.loads(msg.payload), bool(msg.retain)))

    def on(self, channel: str, retained: bool = False) -> list[dict]:
        """Payloads seen on `channel`: live ones, or the retained copies a new subscriber gets
        (other tests on the session broker leave a retained state behind)."""
        with self._lock:
            return [payload for name, payload, was_retained in self.messages
                    if name == channel and was_retained == retained]


@pytest.fixture
def observer() -> Iterator[Callable[[str], Observer]]:
    made: list[Observer] = []

    def start(url: str) -> Observer:
        made.append(Observer(url).start())
        return made[-1]

    yield start
    for obs in made:
        obs.stop()
