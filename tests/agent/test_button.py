"""The panic button and order signals on gpiozero's MockFactory (the only fake: no GPIO here)."""

from __future__ import annotations

import json
import time

import pytest

from edge_agent.button import CallProgress, Indicator, PanicButton, Signals, call_pattern
from edge_agent.config import PanicSettings, SignalsSettings
from edge_agent.orders import Orders
from edge_agent.outbox import Outbox, Uplink
from harness.waiting import eventually
from tests.agent.test_orders import ORDER
from wire import Channel, Topics, decode

FIX = {"ts": 1.0, "lat": 52.0, "lon": 5.0, "mode": 3}
HOLD_S = 0.3


def alarms(outbox: Outbox) -> list[dict]:
    return [
        decode(Channel.ALARM, row.payload)
        for row in outbox.peek(100)
        if row.topic.endswith("/alarm")
    ]


def _panic(tmp_path, mock_gpio, drill: bool = False, fix: dict | None = FIX):
    outbox = Outbox(tmp_path / "o.db")
    button = PanicButton(
        PanicSettings(pin=17, hold_s=HOLD_S, drill=drill),
        Uplink(outbox, "car-7", Topics()),
        lambda: fix,
    )
    # pull_up=True: the pin idles high; pressing the button connects it to ground (low)
    return button, mock_gpio.pin(17), outbox


def test_a_brush_shorter_than_the_hold_time_sends_nothing(tmp_path, mock_gpio):
    button, pin, outbox = _panic(tmp_path, mock_gpio)
    pin.drive_low()
    time.sleep(HOLD_S / 3)
    pin.drive_high()
    time.sleep(HOLD_S * 2)
    assert alarms(outbox) == []
    button.close()


def test_a_hold_sends_exactly_one_alarm_with_the_last_fix(tmp_path, mock_gpio):
    button, pin, outbox = _panic(tmp_path, mock_gpio)
    pin.drive_low()
    time.sleep(HOLD_S * 3)  # held well past the hold time: still one alarm
    pin.drive_high()
    eventually(lambda: alarms(outbox), what="the alarm")
    [alarm] = alarms(outbox)
    assert alarm["kind"] == "panic" and alarm["fix"]["lat"] == 52.0 and len(alarm["alarm_id"]) == 32
    assert outbox.peek(1)[0].priority == 0  # ahead of everything else
    button.close()


def test_drill_mode_sends_kind_test(tmp_path, mock_gpio):
    button, pin, outbox = _panic(tmp_path, mock_gpio, drill=True, fix=None)
    pin.drive_low()
    eventually(lambda: alarms(outbox), what="the alarm")
    pin.drive_high()
    [alarm] = alarms(outbox)
    assert alarm["kind"] == "test" and "fix" not in alarm
    button.close()


def test_buzzer_beeps_for_a_new_order_until_the_ack_button_accepts_it(tmp_path, mock_gpio):
    outbox = Outbox(tmp_path / "o.db")
    orders = Orders(Uplink(outbox, "car-7", Topics()))
    settings = SignalsSettings(ack_pin=27, buzzer_pin=22, led_pin=23)
    indicator = Indicator(settings)
    signals = Signals(settings, orders, indicator)
    orders.handle(json.dumps(ORDER).encode())
    eventually(lambda: mock_gpio.pin(22).state == 1, what="the buzzer on")

    mock_gpio.pin(27).drive_low()  # the officer presses the ack button
    mock_gpio.pin(27).drive_high()
    statuses = [decode(Channel.ACK, r.payload)["status"] for r in outbox.peek(10)]
    assert statuses == ["received", "accepted"]
    time.sleep(1.1)  # longer than a beep cycle: it stays quiet
    assert mock_gpio.pin(22).state == 0 and mock_gpio.pin(23).state == 0
    signals.close()
    indicator.close()


def test_contact_bounce_then_a_hold_sends_one_alarm(tmp_path, mock_gpio):
    button, pin, outbox = _panic(tmp_path, mock_gpio)
    for _ in range(10):  # a worn switch chattering as it closes: 10 ms bounces
        pin.drive_low()
        time.sleep(0.01)
        pin.drive_high()
        time.sleep(0.01)
    assert alarms(outbox) == []  # chatter is never a hold
    pin.drive_low()
    time.sleep(HOLD_S * 2)
    pin.drive_high()
    eventually(lambda: alarms(outbox), what="the alarm")
    time.sleep(HOLD_S)
    assert len(alarms(outbox)) == 1
    button.close()


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        ({"state": "new", "units": []}, "alarm_received"),
        ({"state": "dispatched", "units": [{"state": "delivered"}]}, "alarm_received"),
        (
            {"state": "dispatched", "units": [{"state": "sent"}, {"state": "en_route"}]},
            "units_coming",
        ),
        ({"state": "on_scene", "units": [{"state": "on_scene"}]}, "on_scene"),
        ({"state": "resolved", "units": []}, None),
        ({"state": "closed"}, None),
    ],
)
def test_the_call_shows_how_far_help_has_come(call, shown):
    assert call_pattern(call) == shown


def test_the_led_follows_a_press_from_queued_to_units_coming(tmp_path, mock_gpio):
    indicator = Indicator(SignalsSettings(buzzer_pin=22, led_pin=23))
    progress = CallProgress(indicator)
    progress.pressed("a1")
    assert indicator.shown == "alarm_queued"
    progress.stored(["someone-else"])
    assert indicator.shown == "alarm_queued"
    progress.stored(["a1"])
    assert indicator.shown == "alarm_received"
    indicator.want("order", "order")  # an order meanwhile: the call still shows first
    progress.update({"state": "dispatched", "units": [{"state": "accepted"}]})
    assert indicator.shown == "units_coming" and mock_gpio.pin(23).state == 1
    progress.update({"state": "resolved", "units": []})
    assert indicator.shown == "order"  # the call is over: the order calls for attention
    indicator.close()
