"""Notify: what the server tells units, their screens and the consoles."""

from server.notify.notifier import CONSOLE_COALESCE_S, Notifier, ScreenOrders
from server.notify.packets import TextPacket
from server.notify.transports import CONSOLE_NS, TERMINAL_NS, LiveTransports, Transports, unit_room

__all__ = [
    "CONSOLE_COALESCE_S",
    "CONSOLE_NS",
    "TERMINAL_NS",
    "LiveTransports",
    "Notifier",
    "ScreenOrders",
    "TextPacket",
    "Transports",
    "unit_room",
]
