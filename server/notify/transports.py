"""The ways out of the server, behind one small interface: publish to a unit's agent (MQTT),
emit to a unit's screens and to the consoles (Socket.IO). The notifier depends on this
interface alone; tests give it a recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from flask_socketio import SocketIO

from wire import Channel, Topics, screens

TERMINAL_NS = screens.NAMESPACE
CONSOLE_NS = "/console"


def unit_room(unit_id: str) -> str:
    return f"unit:{unit_id}"


class Transports(Protocol):
    def to_agent(self, unit_id: str, channel: Channel, payload: bytes) -> None: ...

    def to_screens(
        self,
        unit_id: str,
        event: str,
        data: Any,
        delivered: Callable[[], None] | None = None,
        sid: str | None = None,
    ) -> int: ...

    def to_consoles(self, event: str, data: Any) -> None: ...

    def to_owntracks(self, unit_id: str, device: str, payload: bytes) -> None: ...


class LiveTransports:
    """MQTT to the agents (through the ingest's session) and Socket.IO to the screens."""

    def __init__(
        self,
        socketio: SocketIO,
        topics: Topics,
        publish: Callable[[str, bytes, Channel], None],
    ):
        self.socketio = socketio
        self.topics = topics
        self.publish = publish

    def to_agent(self, unit_id: str, channel: Channel, payload: bytes) -> None:
        self.publish(self.topics.unit(unit_id, channel), payload, channel)

    def to_screens(
        self,
        unit_id: str,
        event: str,
        data: Any,
        delivered: Callable[[], None] | None = None,
        sid: str | None = None,
    ) -> int:
        """To the unit's screens connected to this instance (or one of them). With
        `delivered`, each screen's callback confirms it: callbacks need one addressee, so
        the room is walked sid by sid; these emits skip the message queue, as every
        instance does the same for its own screens."""
        if delivered is None and sid is None:
            self.socketio.emit(event, data, to=unit_room(unit_id), namespace=TERMINAL_NS)
            return 1
        sids = [sid] if sid else self._sids_of(unit_id)
        for each in sids:
            # ignore_queue: Flask-SocketIO's emit takes it, its stubs leave it out
            self.socketio.emit(  # type: ignore[call-arg]
                event,
                data,
                to=each,
                namespace=TERMINAL_NS,
                callback=(lambda *_: delivered()) if delivered else None,
                ignore_queue=True,
            )
        return len(sids)

    def _sids_of(self, unit_id: str) -> list[str]:
        # the python-socketio server under Flask-SocketIO, which its stubs leave out
        manager = self.socketio.server.manager  # type: ignore[attr-defined]
        return [sid for sid, _ in manager.get_participants(TERMINAL_NS, unit_room(unit_id))]

    def to_consoles(self, event: str, data: Any) -> None:
        self.socketio.emit(event, data, namespace=CONSOLE_NS)

    def to_owntracks(self, unit_id: str, device: str, payload: bytes) -> None:
        """A command to a phone's OwnTracks app, on its own command topic (QoS 1)."""
        self.publish(f"owntracks/{unit_id}/{device}/cmd", payload, Channel.ORDERS)
