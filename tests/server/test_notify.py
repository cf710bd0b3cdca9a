"""Changes for the consoles: at once after a quiet spell, together when close; the packets
they go in."""

from __future__ import annotations

import time
from typing import Any

from socketio import packet

from server.notify import CONSOLE_COALESCE_S, CONSOLE_NS, Notifier, ScreenOrders, TextPacket


class Emits:
    """Stands in for the transports: what went to the consoles, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def to_consoles(self, event: str, data: Any) -> None:
        self.sent.append((event, data))


def test_changes_close_together_go_as_one_event_in_their_order() -> None:
    emits = Emits()
    notifier = Notifier(emits, ScreenOrders(emits, lambda *_: None))
    notifier.console("incident", {"id": "i1", "state": "new"})
    assert emits.sent == [("incident", {"id": "i1", "state": "new"})]  # quiet before: at once
    notifier.console("order", {"order_id": "o1", "state": "sent"})
    notifier.console("incident", {"id": "i1", "state": "dispatched"})
    assert len(emits.sent) == 1  # held, to go together
    notifier.flush_consoles()
    notifier.flush_consoles()  # nothing more waiting: nothing sent
    assert emits.sent[1:] == [
        (
            "changes",
            [
                ["order", {"order_id": "o1", "state": "sent"}],
                ["incident", {"id": "i1", "state": "dispatched"}],
            ],
        )
    ]
    time.sleep(CONSOLE_COALESCE_S)
    notifier.console("alarm", {"unit_id": "post-9"})
    assert emits.sent[-1] == ("alarm", {"unit_id": "post-9"})  # quiet again: at once


def test_packets_encode_and_decode_what_the_standard_packets_do() -> None:
    data = ["changes", [["order", {"order_id": "o1", "summary": '东门 "3"\n', "eta_s": 61.5}]]]
    ours = TextPacket(packet.EVENT, data=data, namespace=CONSOLE_NS).encode()
    theirs = packet.Packet(packet.EVENT, data=data, namespace=CONSOLE_NS).encode()
    assert TextPacket(encoded_packet=ours).data == packet.Packet(encoded_packet=theirs).data
    assert TextPacket(encoded_packet=theirs).data == data
    # a lone surrogate, which JSON allows and orjson refuses, still arrives for the handler
    # to refuse with a reason
    half = packet.Packet(packet.EVENT, data=["ack", {"reason": "\ud800"}]).encode()
    assert TextPacket(encoded_packet=half).data == ["ack", {"reason": "\ud800"}]
    assert TextPacket(encoded_packet=TextPacket(data=["x", "\ud800"]).encode()).data[1] == "\ud800"
