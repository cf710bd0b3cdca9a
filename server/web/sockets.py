"""Socket.IO namespaces: `/terminal` for in-car terminals and kiosks, `/console` for dispatchers.

Handlers validate what arrives, hand the work to the pipeline worker and answer with
`{"ok": true, ...}` or `{"ok": false, "error": "..."}`; they never touch live state themselves.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import socketio
from flask import current_app, request
from flask_socketio import Namespace
from socketio.exceptions import ConnectionRefusedError

from server.notify import CONSOLE_NS, TERMINAL_NS, unit_room
from server.notify.packets import UNREADABLE_EVENT
from server.orders import OrderRefused, acks, alarms, presence, shifts, views
from server.rules.refusals import Refusal, refusal
from server.runtime import clock, metrics
from server.runtime.log_limit import LimitedLog
from server.state.live_state import LiveState
from server.store import Incident, by_device_token, db
from server.web import throttle
from server.web.auth import SignedIn, signed_in_by_token, who
from wire import Channel, WireError, encode, unwritable
from wire.screens import (
    load_screen_duty,
    load_screen_panic,
    load_screen_shift,
    load_terminal_ack,
)

if TYPE_CHECKING:
    from server.app import Runtime

log = logging.getLogger(__name__)


limited = LimitedLog(log)
RESERVED = ("connect", "disconnect")


def refuse(source: str, label: str, why: str | Refusal) -> dict[str, Any]:
    """A refused event, counted under `label`; a refusal's code and parameters go with its
    English text, for the screen to word."""
    metrics.REJECTED.labels(source, label).inc()
    limited.warning(label, "%s rejected (%s): %s", source, label, why)
    answer = {"ok": False, "error": str(why)}
    return answer | why.public() if isinstance(why, Refusal) else answer


def failed(source: str, event: Any, exc: Exception) -> dict[str, Any]:
    """An event that raised: counted, logged, answered. `retry`: it may work a moment later
    (the screen's outbox keeps it), as when the worker is busy."""
    if isinstance(exc, TimeoutError):
        metrics.REJECTED.labels(source, "busy").inc()
        return {"ok": False, "error": str(exc), "retry": True}
    metrics.STEP_FAILURES.labels(f"{source}_event").inc()
    limited.exception("event", "%s event %.40r failed", source, event)
    return {"ok": False, "error": "the server could not handle this; try again", "retry": True}


class TerminalNamespace(socketio.Namespace):
    """One room per unit; a terminal may touch only its own unit's orders.

    A python-socketio namespace, not Flask-SocketIO's: its handlers need only the connection's
    unit, and Flask-SocketIO pushes a Flask request context for every event (URL matching,
    session, ~5 % of the server at 200 orders/s, each order being three terminal events).
    """

    def __init__(self, runtime: Runtime):
        super().__init__(TERMINAL_NS)
        self.runtime = runtime
        self.unit_of: dict[str, str] = {}
        self.token_of: dict[str, str] = {}  # the device token's digest each connected with

    def trigger_event(self, event: Any, *args: Any) -> Any:
        """Every event a terminal sends gets an answer, and nothing it sends gets past here:
        no unknown or unreadable event, no event before its connect, no "connect" or
        "disconnect" sent as an event by a client already connected (the real ones come from
        the server itself, for a connection not yet or no longer connected)."""
        sid = args[0] if args else None
        reserved = event in RESERVED
        if reserved and not (
            sid in self.unit_of and self.server.manager.is_connected(sid, TERMINAL_NS)
        ):
            return super().trigger_event(event, *args)
        if event == UNREADABLE_EVENT:
            return refuse(
                "socketio", "invalid", f"unreadable event: {args[1] if len(args) > 1 else ''}"
            )
        if reserved or not isinstance(event, str) or not hasattr(self, f"on_{event}"):
            return refuse("socketio", "unknown_event", f"no event {str(event)[:40]!r} on /terminal")
        if sid not in self.unit_of:
            return refuse("socketio", "auth", refusal("not_connected"))
        try:
            return super().trigger_event(event, *args)
        except Exception as exc:
            return failed("socketio", event, exc)

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token or parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
        if not isinstance(token, str) or unwritable(token):
            token = None
        address = environ.get("REMOTE_ADDR", "")
        wait_s = throttle.device_wait_s(address)
        if wait_s is not None:
            metrics.REJECTED.labels("socketio", "throttled").inc()
            raise ConnectionRefusedError(
                f"too many unknown device tokens from {address}: try again in {wait_s} s"
            )
        with db.connection_context():
            unit = by_device_token(token) if token else None
        if unit is None:
            metrics.REJECTED.labels("socketio", "auth").inc()
            throttle.device_token_failed(address)
            raise ConnectionRefusedError("unknown or missing device token")
        self.unit_of[sid] = unit.id
        self.token_of[sid] = unit.terminal_token_hash
        self.enter_room(sid, unit_room(unit.id))
        log.info("terminal for %s connected (%s)", unit.id, sid)

    def on_disconnect(self, sid: str, *_: Any) -> None:
        self.unit_of.pop(sid, None)
        self.token_of.pop(sid, None)

    def held(self) -> dict[str, tuple[str, str]]:
        """Each connection's unit and the token it connected with (`server/web/revocation.py`)."""
        return {sid: (unit, self.token_of[sid]) for sid, unit in list(self.unit_of.items())}

    def on_sync(self, sid: str, *_: Any) -> dict[str, Any]:
        """Sent by a terminal after every (re)connect: every order its unit holds comes again."""
        unit_id = self.unit_of[sid]
        synced = self.runtime.call(presence.sync_terminal, self.runtime.book, unit_id, sid)
        return {"ok": True, "unit_id": unit_id, **synced}

    def on_ack(self, sid: str, data: Any = None) -> dict[str, Any]:
        unit_id = self.unit_of[sid]
        try:
            ack = load_terminal_ack(data)
        except WireError as exc:
            return refuse("socketio", "invalid", str(exc))
        try:
            order = self.runtime.call(
                acks.on_ack,
                self.runtime.book,
                unit_id,
                ack["order_id"],
                ack["status"],
                actor=f"terminal:{unit_id}",
                reason=ack["reason"],
                device_ts=ack.get("ts"),
                received_at=clock.now(),
            )
        except OrderRefused as exc:
            return refuse("socketio", "ack", exc.refusal)
        return {"ok": True, "order": order}

    def on_panic(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The on-screen panic button of a kiosk or car terminal: as the agent's button, never
        refused for what travels with it. The screen keeps it until this answer comes."""
        unit_id = self.unit_of[sid]
        alarm = load_screen_panic(data, fallback_id=uuid.uuid4().hex)
        dropped = alarm.pop("dropped", None)
        book, received_at = self.runtime.book, clock.now()

        def raise_it() -> tuple[Any, dict[str, Any] | None]:
            incident = alarms.on_alarm(book, unit_id, alarm, received_at, dropped)
            return incident, views.call_status(book, incident) if incident else None

        incident, call = self.runtime.call(raise_it)
        return {
            "ok": True,
            "alarm_id": alarm["alarm_id"],
            "incident_id": incident.id if incident else None,
            "call": call,
        }

    def on_position(self, sid: str, data: Any = None) -> dict[str, Any]:
        """A phone's fix from its browser, while its person is on duty: a position like an
        agent's (the same steps; a flood from one screen is refused)."""
        unit_id = self.unit_of[sid]
        try:
            payload = encode(Channel.POSITION, data if isinstance(data, dict) else {})
        except WireError as exc:
            return refuse("socketio", "invalid", str(exc))
        if not throttle.phone_report_allowed(unit_id):
            return refuse("socketio", "flood", refusal("positions_too_often"))
        self.runtime.take_unit_message(unit_id, Channel.POSITION, payload)
        return {"ok": True}

    def on_duty(self, sid: str, data: Any = None) -> dict[str, Any]:
        """A phone's person going on duty (online: recommended, tracked) or off (offline:
        the screen stops sending positions, and none is kept)."""
        unit_id = self.unit_of[sid]
        try:
            on = load_screen_duty(data)
        except WireError as exc:
            return refuse("socketio", "invalid", str(exc))
        state = encode(Channel.STATE, {"online": on, "ts": clock.now()})
        self.runtime.take_unit_message(unit_id, Channel.STATE, state)
        return {"ok": True, "on_duty": on}

    def on_shift(self, sid: str, data: Any = None) -> dict[str, Any]:
        """The crew signing on at the terminal (officer ids and names, one to three) or off
        (no one): from now, orders, acks and the timeline say who."""
        unit_id = self.unit_of[sid]
        try:
            crew = load_screen_shift(data)
        except WireError as exc:
            return refuse("socketio", "invalid", str(exc))
        try:
            on = self.runtime.call(
                shifts.sign_on, self.runtime.book, unit_id, crew, f"terminal:{unit_id}"
            )
        except OrderRefused as exc:
            return refuse("socketio", "shift", exc.refusal)
        return {"ok": True, "crew": on}


def request_sid() -> str:
    """The connection whose console event is being handled: Flask-SocketIO sets it on the
    request, which Flask's types do not know."""
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid


def console_event_failed(exc: Exception) -> dict[str, Any]:
    """Flask-SocketIO's handler for a console event that raised: counted and answered."""
    event = getattr(request, "event", None) or {}
    return failed("console", event.get("message"), exc)


class ConsoleNamespace(Namespace):
    """Dispatchers' live view: a snapshot on `sync`, then pushed changes.

    Only a signed-in account may connect: the web login's session cookie (sent with the
    handshake) or `auth={"token": <api_token>}`. A connection ends with its session.
    """

    def __init__(self) -> None:
        super().__init__(CONSOLE_NS)
        self.user_of: dict[str, SignedIn] = {}

    def on_connect(self, auth: dict | None = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        user = signed_in_by_token(token) if isinstance(token, str) else who()
        if user is None or not user.may("view"):
            metrics.REJECTED.labels("socketio", "auth").inc()
            raise ConnectionRefusedError("sign in first: the console's login or an API token")
        self.user_of[request_sid()] = user
        log.info("console for %s connected (%s)", user.actor, request_sid())

    def on_disconnect(self, *_: Any) -> None:
        self.user_of.pop(request_sid(), None)

    def held(self) -> dict[str, tuple[tuple[str, bool], str]]:
        """Each connection's account, how it signed in and with what (`revocation.py`)."""
        return {
            sid: ((user.name, user.by_token), user.credential)
            for sid, user in list(self.user_of.items())
        }

    def end_expired(self) -> None:
        """Pushed changes go to every console: one whose login has ended is let go."""
        for sid, user in list(self.user_of.items()):
            if user.expired():
                log.info("console for %s: the session ended", user.actor)
                self.disconnect(sid, namespace=CONSOLE_NS)

    def _may(self, permission: str) -> dict[str, Any] | None:
        user = self.user_of.get(request_sid())
        if user is None or user.expired():
            return refuse("socketio", "auth", refusal("session_ended"))
        if not user.may(permission):
            return refuse("socketio", "role", refusal("role_may_not", role=user.role))
        return None

    def on_sync(self, *_: Any) -> dict[str, Any]:
        refused = self._may("view")
        runtime = current_app.extensions["fieldlink"]
        return refused or {"ok": True, **runtime.call(snapshot, runtime.live)}


def snapshot(live: LiveState) -> dict[str, Any]:
    """What a console shows first (in the worker): every unit, the incidents still open,
    the alarms still ringing, and the server's time (ages on the console are by its clock)."""
    open_incidents = Incident.select().where(Incident.state != "closed")
    return {
        "units": [u.public() for u in live.units.values()],
        "incidents": [
            views.incident_public(i) for i in open_incidents.order_by(Incident.created_at)
        ],
        "alarms": views.unacknowledged_alarms(),
        "now": clock.now(),
    }
