"""Notify: orders to a unit's screens and agent, how its call goes to the unit that raised
it, changes to the consoles. Through `Transports`; with several instances, orders for
screens reach every instance (`everywhere`), each delivering to its own screens.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from server.notify.transports import Transports
from wire import Channel, encode
from wire.screens import ScreenEvent

log = logging.getLogger(__name__)

# Changes for the consoles closer together than this go out together, as one `changes`
# event. Every emit to /console is a packet to each console; a busy hour's orders make
# several changes each, and sent one by one they cost more than the orders themselves.
CONSOLE_COALESCE_S = 0.05


class ScreenOrders:
    """Orders to the unit's screens connected here; each screen's callback = delivered."""

    def __init__(self, transports: Transports, on_delivered: Callable[[str, str], None]):
        self.transports = transports
        self.on_delivered = on_delivered

    def here(self, unit_id: str, order: dict[str, Any], sid: str | None = None) -> int:
        order_id = order["order_id"]
        return self.transports.to_screens(
            unit_id,
            ScreenEvent.ORDER.value,
            order,
            lambda: self.on_delivered(unit_id, order_id),
            sid,
        )


class Notifier:
    def __init__(
        self,
        transports: Transports,
        screens: ScreenOrders,
        everywhere: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.transports = transports
        self.screens = screens
        self.everywhere = everywhere  # an order to every instance's screens of the unit
        self._console_lock = threading.Lock()  # emits under it too: consoles see changes in order
        self._console_waiting: list[list[Any]] = []
        self._console_sent_at = 0.0

    def order_to_agent(self, unit_id: str, order: dict[str, Any]) -> None:
        self.transports.to_agent(unit_id, Channel.ORDERS, encode(Channel.ORDERS, order))

    def phone_command(self, unit_id: str, device: str, command: dict[str, Any]) -> None:
        """A command to a phone's OwnTracks app (e.g. its orders' regions)."""
        self.transports.to_owntracks(unit_id, device, json.dumps(command).encode())

    def order_to_terminals(
        self, unit_id: str, order: dict[str, Any], sid: str | None = None
    ) -> None:
        """To each of the unit's screens, wherever connected (or to one, connected here)."""
        if sid is None and self.everywhere is not None:
            self.everywhere(unit_id, order)
        else:
            self.screens.here(unit_id, order, sid)

    def reporter(self, unit_id: str, call: dict[str, Any]) -> None:
        """The state of a call for help, to the screens and the agent (its lights) of the
        unit that raised it."""
        self.transports.to_screens(unit_id, ScreenEvent.CALL.value, call)
        self.transports.to_agent(unit_id, Channel.CALL, encode(Channel.CALL, call))

    def console(self, event: str, data: Any) -> None:
        """A change for the consoles: at once after a quiet spell, else with the changes that
        follow it, when `flush_consoles` next runs (every CONSOLE_COALESCE_S)."""
        with self._console_lock:
            now = time.monotonic()
            if self._console_waiting or now - self._console_sent_at < CONSOLE_COALESCE_S:
                self._console_waiting.append([event, data])
                return
            self._console_sent_at = now
            self.transports.to_consoles(event, data)

    def flush_consoles(self) -> None:
        """The changes held back go as one `changes` event: [[event, data], ...], in order."""
        with self._console_lock:
            if not self._console_waiting:
                return
            changes, self._console_waiting = self._console_waiting, []
            self._console_sent_at = time.monotonic()
            self.transports.to_consoles("changes", changes)
