"""Socket.IO packets as fieldlink sends and reads them: JSON by orjson, no binary
attachments, and whatever a client should not send turned into a refusal, not an error."""

from __future__ import annotations

import json
from typing import Any

import orjson
from socketio import packet
from socketio.packet import Packet

from wire import WireError, parse_json

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

    data: Any  # the event's name and arguments, as the library decodes them
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
