"""The unit's hardware: the panic button, and the optional buzzer, LED and ack button.

Buttons are wired between the GPIO pin and ground with the Pi's internal pull-up
(gpiozero's `pull_up=True`): the pin reads low while the button is pressed.

The LED and buzzer say two things, the unit's own call for help first: how it goes after
a press (queued, received by the server, units coming, on scene), and otherwise a new
order nobody has answered yet. `call_pattern` decides which pattern a call shows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from gpiozero import LED, Button, Buzzer

from edge_agent.config import PanicSettings, SignalsSettings
from edge_agent.orders import Orders
from edge_agent.outbox import Uplink
from wire import Channel, WireError

log = logging.getLogger(__name__)

# pattern -> (LED on, off seconds; None: off, 0: steady), (buzzer on, off, beeps; None: off)
PATTERNS: dict[str, tuple[tuple[float, float] | None, tuple[float, float, int | None] | None]] = {
    "order": ((0.5, 0.5), (0.2, 0.8, None)),  # until the officer answers
    "alarm_queued": ((0.1, 0.1), None),  # pressed; not yet in the server's store
    "alarm_received": ((0.5, 1.5), (0.1, 0.1, 1)),  # the server has it: help is being sent
    "units_coming": ((0, 0), None),  # a unit has accepted and is on its way: steady
    "on_scene": (None, (0.1, 0.1, 2)),  # two short beeps: they are there
}
COMING = frozenset({"accepted", "en_route", "on_scene"})


def call_pattern(call: dict[str, Any]) -> str | None:
    """What the unit's own call for help shows, from the server's word on it (None: over)."""
    state = call.get("state")
    if state in ("new", "dispatched"):
        coming = any(u.get("state") in COMING for u in call.get("units", ()))
        return "units_coming" if coming else "alarm_received"
    if state == "on_scene":
        return "on_scene"
    return None


class Indicator:
    """The buzzer and LED; the call's pattern wins over the order's while there is one."""

    LAYERS = ("call", "order")

    def __init__(self, settings: SignalsSettings):
        self.buzzer = Buzzer(settings.buzzer_pin) if settings.buzzer_pin is not None else None
        self.led = LED(settings.led_pin) if settings.led_pin is not None else None
        self._wanted: dict[str, str | None] = dict.fromkeys(self.LAYERS)
        self._shown: str | None = None
        self._lock = threading.Lock()  # GPIO callbacks, paho's thread and the GPS thread

    def want(self, layer: str, pattern: str | None) -> None:
        with self._lock:
            self._wanted[layer] = pattern
            shown = next((self._wanted[k] for k in self.LAYERS if self._wanted[k]), None)
            if shown != self._shown:
                self._shown = shown
                self._show(shown)

    @property
    def shown(self) -> str | None:
        return self._shown

    def wanted(self, layer: str) -> str | None:
        with self._lock:
            return self._wanted[layer]

    def _show(self, pattern: str | None) -> None:
        led, buzzer = PATTERNS[pattern] if pattern else (None, None)
        if self.led:
            if led is None:
                self.led.off()
            elif led == (0, 0):
                self.led.on()
            else:
                self.led.blink(on_time=led[0], off_time=led[1])
        if self.buzzer:
            if buzzer is None:
                self.buzzer.off()
            else:
                self.buzzer.beep(on_time=buzzer[0], off_time=buzzer[1], n=buzzer[2])

    def close(self) -> None:
        for device in (self.buzzer, self.led):
            if device is not None:
                device.close()


class CallProgress:
    """The unit's own call for help on its LED and buzzer, from the press to the arrival."""

    def __init__(self, indicator: Indicator):
        self.indicator = indicator
        self._waiting: set[str] = set()  # alarms pressed, not yet in the server's store

    def pressed(self, alarm_id: str) -> None:
        self._waiting.add(alarm_id)
        if self.indicator.shown not in ("alarm_received", "units_coming"):
            self.indicator.want("call", "alarm_queued")

    def stored(self, alarm_ids: Iterable[str]) -> None:
        """The server's receipt named these alarms."""
        mine = self._waiting & set(alarm_ids)
        if mine:
            self._waiting -= mine
            if self.indicator.shown == "alarm_queued":
                self.indicator.want("call", "alarm_received")

    def update(self, call: dict[str, Any]) -> None:
        """The server's word on the call: dispatched, units coming, on scene, over."""
        self.indicator.want("call", call_pattern(call))

    def active(self) -> bool:
        """A press not yet over: waiting for the server, or help on its way or there."""
        return bool(self._waiting) or self.indicator.wanted("call") is not None


class PanicButton:
    """Held for `hold_s` (so a brush doesn't fire it), it sends exactly one alarm."""

    def __init__(
        self,
        settings: PanicSettings,
        uplink: Uplink,
        last_fix: Callable[[], dict[str, Any] | None],
        on_fire: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.uplink = uplink
        self.clock = clock  # the unit's time: the press counts at it
        self.kind = "test" if settings.drill else "panic"
        self.last_fix = last_fix
        self.on_fire = on_fire
        # hold_repeat=False: one alarm per hold, however long the officer keeps pressing.
        self.button = Button(settings.pin, pull_up=True, hold_time=settings.hold_s)
        self.button.when_held = self.fire

    def fire(self) -> None:
        alarm: dict[str, Any] = {
            "alarm_id": uuid.uuid4().hex,
            "ts": self.clock(),
            "kind": self.kind,
        }
        fix = self.last_fix()
        if fix is not None:
            alarm["fix"] = fix
        try:
            self.uplink.send(Channel.ALARM, alarm)
        except WireError as exc:
            # the filters keep only fixes the wire takes, so this is a bug: still, the alarm
            # goes, without its fix (the server places it by the unit's post or last fix)
            log.error("the last fix cannot travel with the alarm (%s); sending it without", exc)
            alarm.pop("fix", None)
            self.uplink.send(Channel.ALARM, alarm)
        log.warning("%s alarm %s queued", self.kind, alarm["alarm_id"])
        if self.on_fire:
            self.on_fire(alarm["alarm_id"])

    def close(self) -> None:
        self.button.close()


class Signals:
    """A new order calls for attention (buzzer, LED) until it is answered; an ack button
    accepts the current one."""

    def __init__(self, settings: SignalsSettings, orders: Orders, indicator: Indicator):
        self.orders = orders
        self.indicator = indicator
        self.ack_button = None
        if settings.ack_pin is not None:
            self.ack_button = Button(settings.ack_pin, pull_up=True)
            self.ack_button.when_pressed = self._accept_current
        orders.on_order = self.order_arrived
        orders.on_answer = self.order_answered

    def order_arrived(self, order: dict[str, Any]) -> None:
        self.indicator.want("order", None if order["kind"] == "cancel" else "order")

    def order_answered(self, _order_id: str, _status: str) -> None:
        self.indicator.want("order", None)

    def _accept_current(self) -> None:
        if not self.orders.accept():
            log.info("ack button pressed with no order to accept")

    def close(self) -> None:
        self.orders.on_order = self.orders.on_answer = None
        if self.ack_button is not None:
            self.ack_button.close()
