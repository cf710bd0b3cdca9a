"""Ignition off: the Pi shuts down once the line has stayed off long enough and the unit has
nothing open; cranking dips and a stop at a scene do not shut it down."""

from __future__ import annotations

import sys

import wire
from edge_agent.app import Agent
from edge_agent.config import PowerSettings
from edge_agent.power import Ignition, power_off_due
from harness.waiting import eventually
from tests.agent.conftest import agent_settings
from tests.agent.test_orders import ORDER
from wire import Channel


def test_power_off_waits_for_the_time_and_for_the_unit_to_be_idle():
    assert not power_off_due(None, 1000.0, 600.0, busy=False)  # ignition on
    assert not power_off_due(500.0, 1000.0, 600.0, busy=False)  # off 500 s: not yet
    assert power_off_due(400.0, 1000.0, 600.0, busy=False)
    assert not power_off_due(0.0, 1000.0, 600.0, busy=True)  # at a scene, engine off


def _ignition(tmp_path, busy, clock):
    marker = tmp_path / "powered-off"
    command = f"{sys.executable} -c \"open('{marker}', 'w')\""
    settings = PowerSettings(ignition_pin=24, off_after_s=60.0, shutdown_command=command)
    return Ignition(settings, busy, mono=lambda: clock[0]), marker


def test_a_cranking_dip_is_not_an_ignition_off(tmp_path, mock_gpio):
    clock, busy = [0.0], [False]
    ignition, marker = _ignition(tmp_path, lambda: busy[0], clock)
    line = mock_gpio.pin(24)
    try:
        line.drive_low()  # ignition on (the opto-coupler pulls the line low)
        assert not ignition.check()
        line.drive_high()  # the engine cranks: the line dips for a moment
        clock[0] = 2.0
        assert not ignition.check()
        line.drive_low()
        clock[0] = 100.0
        assert not ignition.check() and ignition.off_since is None and not marker.exists()
        line.drive_high()  # parked at a scene, on an order
        busy[0] = True
        clock[0] = 200.0
        ignition.check()
        clock[0] = 900.0
        assert not ignition.check() and not marker.exists()
        busy[0] = False  # the order cleared
        assert ignition.check() and marker.exists()
    finally:
        ignition.close()


def test_the_agent_stays_up_with_an_open_order_then_shuts_down(tmp_path, mosquitto, mock_gpio):
    marker = tmp_path / "powered-off"
    command = f"{sys.executable} -c \"open('{marker}', 'w')\""
    settings = agent_settings(
        tmp_path,
        mosquitto.url,
        power=PowerSettings(ignition_pin=24, off_after_s=0.5, shutdown_command=command),
    )
    agent = Agent(settings)
    mock_gpio.pin(24).drive_low()
    agent.start()
    try:
        agent.orders.handle(
            wire.encode(Channel.ORDERS, ORDER)
        )  # an order arrives; the officer drives there
        mock_gpio.pin(24).drive_high()  # and switches the engine off at the scene
        ignition = agent.ignition
        assert ignition is not None
        eventually(lambda: ignition.off_since is not None, what="ignition off seen")
        assert agent.busy() and not marker.exists()
        agent.orders.clear()
        eventually(marker.exists, timeout=5, what="the shutdown command")
    finally:
        agent.stop()
