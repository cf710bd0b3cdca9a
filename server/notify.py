"""Notify: orders to a unit's terminals (Socket.IO) and agent (MQTT); changes to the consoles."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask_socketio import SocketIO

from wire import Channel, Topics, encode

log = logging.getLogger(__name__)

TERMINAL_NS = "/terminal"
CONSOLE_NS = "/console"


def unit_room(unit_id: str) -> str:
    return f"unit:{unit_id}"


class Notifier:
    def __init__(
        self,
        socketio: SocketIO,
        topics: Topics,
        publish: Callable[[str, bytes, Channel], None],
        on_delivered: Callable[[str, str], None],
    ):
        self.socketio = socketio
        self.topics = topics
        self.publish = publish
        self.on_delivered = on_delivered
        # With several instances: hands an order to every instance's `terminals_here`.
        self.fanout: Callable[[str, dict[str, Any]], None] | None = None

    def order_to_agent(self, unit_id: str, order: dict[str, Any]) -> None:
        self.publish(
            self.topics.unit(unit_id, Channel.ORDERS), encode(Channel.ORDERS, order), Channel.ORDERS
        )

    def order_to_terminals(
        self, unit_id: str, order: dict[str, Any], sid: str | None = None
    ) -> None:
        """To each of the unit's terminals, wherever connected (or to one, connected here)."""
        if sid is None and self.fanout is not None:
            self.fanout(unit_id, order)
        else:
            self.terminals_here(unit_id, order, sid)

    def terminals_here(self, unit_id: str, order: dict[str, Any], sid: str | None = None) -> int:
        """Emit to the unit's terminals connected to this instance; a terminal's callback =
        delivered.

        Socket.IO callbacks need one addressee, so the room is walked sid by sid; the emit
        skips the message queue, as every instance is doing the same for its own terminals.
        """
        sids = [sid] if sid else self.terminal_sids(unit_id)
        order_id = order["order_id"]
        for each in sids:
            self.socketio.emit(
                "order",
                order,
                to=each,
                namespace=TERMINAL_NS,
                callback=lambda *_: self.on_delivered(unit_id, order_id),
                ignore_queue=True,
            )
        return len(sids)

    def terminal_sids(self, unit_id: str) -> list[str]:
        manager = self.socketio.server.manager
        return [sid for sid, _ in manager.get_participants(TERMINAL_NS, unit_room(unit_id))]

    def reporter(self, unit_id: str, call: dict[str, Any]) -> None:
        """The state of a call for help, to the screens of the post that raised it."""
        self.socketio.emit("call", call, to=unit_room(unit_id), namespace=TERMINAL_NS)

    def console(self, event: str, data: Any) -> None:
        self.socketio.emit(event, data, namespace=CONSOLE_NS)
