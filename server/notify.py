"""Notify: orders to a unit's terminals (Socket.IO) and agent (MQTT); changes to the consoles."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from flask_socketio import SocketIO
from socketio import packet
from socketio.packet import Packet

from wire import Channel, Topics, WireError, encode, parse_json

log = logging.getLogger(__name__)

TERMINAL_NS = "/terminal"
CONSOLE_NS = "/console"
# Changes for the consoles closer together than this go out together, as one `changes`
# event. Every emit to /console is a packet to each console; a busy hour's orders make
# several changes each, and sent one by one they cost more than the orders themselves.
CONSOLE_COALESCE_S = 0.05


# what a packet's data becomes when it cannot be read: an event the namespaces refuse with
# the reason (`sockets.py`), so the sender gets a clear answer and the server goes on
UNREADABLE_EVENT = "__unreadable__"
MAX_PACKET_BYTES = 1_000_000  # Socket.IO's own default buffer size


class PacketJson:
    """orjson for Socket.IO packets: encoding them with the standard library was ~5 % of the
    server at 200 orders/s. What orjson refuses and JSON allows (a lone surrogate) goes to
    the wire's parser, so a handler still sees it and answers why it is refused; what that
    refuses too (nested a thousand deep, a number of thousands of digits) becomes an
    UNREADABLE_EVENT instead of an exception in the connection's reader."""

    @staticmethod
    def dumps(data: Any, **_: Any) -> str:
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:
            return json.dumps(data, separators=(",", ":"))

    @staticmethod
    def loads(text: str | bytes) -> Any:
        try:
            return orjson.loads(text)
        except (orjson.JSONDecodeError, RecursionError):  # orjson's limit on nesting
            pass
        try:
            return parse_json(text, max_bytes=MAX_PACKET_BYTES)
        except WireError as exc:
            return [UNREADABLE_EVENT, str(exc)]


class TextPacket(Packet):
    """Socket.IO packets that never carry binary attachments. Nothing sent here holds bytes,
    and the library's check for them walks every payload item by item before encoding it:
    at 200 orders/s that walk over the consoles' batches was ~5 % of the server.

    A packet no client sends (one that cannot be decoded, a CONNECT_ERROR, a binary one)
    becomes an UNREADABLE_EVENT, which the namespaces refuse with a counted answer, instead
    of an exception, with its traceback, in the connection's reader for every such packet.
    """

    uses_binary_events = False
    json = PacketJson
    FROM_CLIENTS = frozenset({packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK})

    def __init__(self, *args: Any, encoded_packet: Any = None, **kwargs: Any):
        super().__init__(*args, encoded_packet=encoded_packet, **kwargs)
        if encoded_packet is not None and not encoded_packet:  # the library skips decoding ""
            self._unreadable("an empty packet")

    def decode(self, encoded_packet: Any) -> int:
        try:
            super().decode(encoded_packet)
        except (ValueError, TypeError, IndexError) as exc:
            return self._unreadable(f"not a Socket.IO packet: {exc}")
        if self.packet_type not in self.FROM_CLIENTS:
            return self._unreadable(f"a client sends no packet of type {self.packet_type}")
        if self.packet_type == packet.EVENT and not (isinstance(self.data, list) and self.data):
            return self._unreadable("an event is a list: its name, then its data")
        if self.packet_type == packet.ACK and not isinstance(self.data, list):
            self.data = []
        return 0

    def _unreadable(self, why: str) -> int:
        self.packet_type, self.id, self.data = packet.EVENT, None, [UNREADABLE_EVENT, why]
        return 0


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
        self._console_lock = threading.Lock()  # emits under it too: consoles see changes in order
        self._console_waiting: list[list[Any]] = []
        self._console_sent_at = 0.0

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
        """The state of a call for help, to the screens and the agent (its lights) of the
        unit that raised it."""
        self.socketio.emit("call", call, to=unit_room(unit_id), namespace=TERMINAL_NS)
        self.publish(
            self.topics.unit(unit_id, Channel.CALL), encode(Channel.CALL, call), Channel.CALL
        )

    def console(self, event: str, data: Any) -> None:
        """A change for the consoles: at once after a quiet spell, else with the changes that
        follow it, when `flush_consoles` next runs (every CONSOLE_COALESCE_S)."""
        with self._console_lock:
            now = time.monotonic()
            if self._console_waiting or now - self._console_sent_at < CONSOLE_COALESCE_S:
                self._console_waiting.append([event, data])
                return
            self._console_sent_at = now
            self.socketio.emit(event, data, namespace=CONSOLE_NS)

    def flush_consoles(self) -> None:
        """The changes held back go as one `changes` event: [[event, data], ...], in order."""
        with self._console_lock:
            if not self._console_waiting:
                return
            changes, self._console_waiting = self._console_waiting, []
            self._console_sent_at = time.monotonic()
            self.socketio.emit("changes", changes, namespace=CONSOLE_NS)
