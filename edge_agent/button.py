"""The unit's hardware: the panic button, and the optional buzzer, LED and ack button.

Buttons are wired between the GPIO pin and ground with the Pi's internal pull-up
(gpiozero's `pull_up=True`): the pin reads low while the button is pressed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from gpiozero import LED, Button, Buzzer

from edge_agent.config import PanicSettings, SignalsSettings
from edge_agent.orders import Orders
from edge_agent.outbox import Uplink
from wire import Channel

log = logging.getLogger(__name__)


class PanicButton:
    """Held for `hold_s` (so a brush doesn't fire it), it sends exactly one alarm."""

    def __init__(
        self, settings: PanicSettings, uplink: Uplink, last_fix: Callable[[], dict | None]
    ):
        self.uplink = uplink
        self.kind = "test" if settings.drill else "panic"
        self.last_fix = last_fix
        # hold_repeat=False: one alarm per hold, however long the officer keeps pressing.
        self.button = Button(settings.pin, pull_up=True, hold_time=settings.hold_s)
        self.button.when_held = self.fire

    def fire(self) -> None:
        alarm: dict = {"alarm_id": uuid.uuid4().hex, "ts": time.time(), "kind": self.kind}
        fix = self.last_fix()
        if fix is not None:
            alarm["fix"] = fix
        self.uplink.send(Channel.ALARM, alarm)
        log.warning("%s alarm %s queued", self.kind, alarm["alarm_id"])

    def close(self) -> None:
        self.button.close()


class Signals:
    """Buzzer and LED that call for attention while a new order is unanswered."""

    def __init__(self, settings: SignalsSettings, orders: Orders):
        self.orders = orders
        self.buzzer = Buzzer(settings.buzzer_pin) if settings.buzzer_pin is not None else None
        self.led = LED(settings.led_pin) if settings.led_pin is not None else None
        self.ack_button = None
        if settings.ack_pin is not None:
            self.ack_button = Button(settings.ack_pin, pull_up=True)
            self.ack_button.when_pressed = self._accept_current
        orders.on_order = self.order_arrived
        orders.on_answer = self.order_answered

    def order_arrived(self, order: dict) -> None:
        if order["kind"] == "cancel":
            self._quiet()
        else:
            self._alert()

    def order_answered(self, _order_id: str, _status: str) -> None:
        self._quiet()

    def _accept_current(self) -> None:
        if not self.orders.accept():
            log.info("ack button pressed with no order to accept")

    def _alert(self) -> None:
        if self.buzzer:
            self.buzzer.beep(on_time=0.2, off_time=0.8)
        if self.led:
            self.led.blink(on_time=0.5, off_time=0.5)

    def _quiet(self) -> None:
        if self.buzzer:
            self.buzzer.off()
        if self.led:
            self.led.off()

    def close(self) -> None:
        self.orders.on_order = self.orders.on_answer = None
        for device in (self.buzzer, self.led, self.ack_button):
            if device is not None:
                device.close()
