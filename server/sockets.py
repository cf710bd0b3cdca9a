"""Socket.IO namespaces: `/terminal` for in-car terminals and kiosks, `/console` for dispatchers.

Handlers validate what arrives, hand the work to the pipeline worker and answer with
`{"ok": true, ...}` or `{"ok": false, "error": "..."}`; they never touch live state themselves.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from flask import request
from flask_socketio import ConnectionRefusedError, Namespace, join_room
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from server import clock, metrics
from server.notify import CONSOLE_NS, TERMINAL_NS, unit_room
from server.orders import OrderRefused
from server.store import Unit, db
from wire import ACK_STATUSES, ALARM_KINDS

if TYPE_CHECKING:
    from server.app import Runtime

log = logging.getLogger(__name__)


class TerminalAck(Schema):
    class Meta:
        unknown = EXCLUDE

    order_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    status = fields.String(
        required=True, validate=validate.OneOf([s for s in ACK_STATUSES if s != "received"])
    )
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class TerminalPanic(Schema):
    class Meta:
        unknown = EXCLUDE

    alarm_id = fields.String(
        load_default=lambda: uuid.uuid4().hex, validate=validate.Length(min=1, max=64)
    )
    kind = fields.String(load_default="panic", validate=validate.OneOf(ALARM_KINDS))


def refuse(source: str, reason: str, message: str) -> dict[str, Any]:
    metrics.REJECTED.labels(source, reason).inc()
    log.warning("%s rejected (%s): %s", source, reason, message)
    return {"ok": False, "error": message}


class TerminalNamespace(Namespace):
    """One room per unit; a terminal may touch only its own unit's orders."""

    def __init__(self, runtime: Runtime):
        super().__init__(TERMINAL_NS)
        self.runtime = runtime
        self.unit_of: dict[str, str] = {}

    def on_connect(self, auth: dict | None = None) -> None:
        token = (auth or {}).get("token") if isinstance(auth, dict) else None
        token = token or request.args.get("token")
        with db.connection_context():
            unit = Unit.get_or_none(Unit.terminal_token == token) if token else None
        if unit is None:
            metrics.REJECTED.labels("socketio", "auth").inc()
            raise ConnectionRefusedError("unknown or missing device token")
        self.unit_of[request.sid] = unit.id
        join_room(unit_room(unit.id))
        log.info("terminal for %s connected (%s)", unit.id, request.sid)

    def on_disconnect(self, *_: Any) -> None:
        self.unit_of.pop(request.sid, None)

    def on_sync(self, *_: Any) -> dict[str, Any]:
        """Sent by a terminal after every (re)connect: every order its unit holds comes again."""
        unit_id = self.unit_of[request.sid]
        synced = self.runtime.pipeline.call(self.runtime.orders.sync_terminal, unit_id, request.sid)
        return {"ok": True, "unit_id": unit_id, **synced}

    def on_ack(self, data: Any = None) -> dict[str, Any]:
        unit_id = self.unit_of[request.sid]
        try:
            ack = TerminalAck().load(data if isinstance(data, dict) else {})
        except ValidationError as exc:
            return refuse("socketio", "invalid", f"invalid ack: {exc.messages}")
        try:
            order = self.runtime.pipeline.call(
                self.runtime.orders.on_ack,
                unit_id,
                ack["order_id"],
                ack["status"],
                actor=f"terminal:{unit_id}",
                reason=ack["reason"],
            )
        except OrderRefused as exc:
            return refuse("socketio", "ack", str(exc))
        return {"ok": True, "order": order}

    def on_panic(self, data: Any = None) -> dict[str, Any]:
        """The on-screen panic button of a kiosk or car terminal."""
        unit_id = self.unit_of[request.sid]
        try:
            panic = TerminalPanic().load(data if isinstance(data, dict) else {})
        except ValidationError as exc:
            return refuse("socketio", "invalid", f"invalid panic: {exc.messages}")
        now = clock.now()
        incident = self.runtime.pipeline.call(
            self.runtime.orders.on_alarm, unit_id, {**panic, "ts": now}, now
        )
        return {
            "ok": True,
            "alarm_id": panic["alarm_id"],
            "incident_id": incident.id if incident else None,
        }


class ConsoleNamespace(Namespace):
    """Dispatchers' live view: a snapshot on `sync`, then pushed changes."""

    def __init__(self, runtime: Runtime):
        super().__init__(CONSOLE_NS)
        self.runtime = runtime

    def on_sync(self, *_: Any) -> dict[str, Any]:
        return {"ok": True, **self.runtime.pipeline.call(self.runtime.snapshot)}
