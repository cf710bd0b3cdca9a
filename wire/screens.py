"""Socket.IO `/terminal`: what in-car terminals and kiosk screens send and are sent.

A screen connects with its unit's terminal token, sends `sync` after every (re)connect, and
answers its orders with `ack`; a kiosk or car screen raises a call with `panic`. Every event
it sends is answered `{"ok": true, ...}` or `{"ok": false, "error": ..., "retry"?: true}`.
The server pushes the MQTT messages with what a screen shows besides: `order` is an `orders`
message with the order's state and the way from the unit to the scene (the screen's callback
says it was shown), `call` is a `call` message with the times of its steps.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from marshmallow import ValidationError, fields, validate

from wire.messages import (
    ACK_STATUSES,
    ID_LENGTH,
    CallSchema,
    Message,
    OrderSchema,
    Text,
    WireError,
    load_alarm,
    number,
)

NAMESPACE = "/terminal"


class ScreenEvent(StrEnum):
    SYNC = "sync"  # screen -> server: send every order of my unit again
    ACK = "ack"  # screen -> server: an answer to an order
    PANIC = "panic"  # screen -> server: the on-screen emergency button
    ORDER = "order"  # server -> screen: an `orders` message
    CALL = "call"  # server -> screen: a `call` message, how the unit's own call goes
    POSITION = "position"  # screen -> server: a phone's fix from the browser (a position)
    DUTY = "duty"  # screen -> server: a phone's person going on or off duty


class TerminalAckSchema(Message):
    order_id = Text(required=True, validate=ID_LENGTH)
    # "received" is the screen's delivery callback, not an answer an officer gives
    status = fields.String(
        required=True, validate=validate.OneOf([s for s in ACK_STATUSES if s != "received"])
    )
    reason = Text(load_default="", validate=validate.Length(max=500))
    # when the officer pressed it (the screen may have held it while offline)
    ts = number(validate=validate.Range(min=0))


class AnswerSchema(Message):
    ok = fields.Boolean(required=True, truthy={True}, falsy={False})
    error = Text()
    reason = Text()  # a refusal's code (server/rules/refusals.py), `params` its values
    params = fields.Dict(keys=fields.String())
    retry = fields.Boolean(truthy={True}, falsy={False})  # the screen's outbox keeps it


class ScreenOrderSchema(OrderSchema):
    state = fields.String(validate=validate.Length(max=16))
    distance_m = number(allow_none=True, validate=validate.Range(min=0))  # None: no fix
    eta_s = number(allow_none=True, validate=validate.Range(min=0))


class ScreenCallSchema(CallSchema):
    created_at = number(allow_none=True, validate=validate.Range(min=0))
    dispatched_at = number(allow_none=True, validate=validate.Range(min=0))
    on_scene_at = number(allow_none=True, validate=validate.Range(min=0))


PUSHED = {ScreenEvent.ORDER: ScreenOrderSchema(), ScreenEvent.CALL: ScreenCallSchema()}


def validate_pushed(event: ScreenEvent, message: dict[str, Any]) -> dict[str, Any]:
    """A message the server pushes to screens, validated; WireError says what is wrong."""
    try:
        pushed: dict[str, Any] = PUSHED[event].load(message)
    except ValidationError as exc:
        raise WireError(f"invalid {event} event: {exc.messages}") from None
    return pushed


# made once: building a schema's fields costs more than loading an ack with them
_ACK = TerminalAckSchema()


def load_terminal_ack(data: Any) -> dict[str, Any]:
    """A screen's `ack`, validated; WireError says what is wrong."""
    try:
        ack: dict[str, Any] = _ACK.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise WireError(f"invalid ack: {exc.messages}") from None
    return ack


def load_screen_panic(data: Any, fallback_id: str) -> dict[str, Any]:
    """A screen's `panic`: an alarm (never refused, see `load_alarm`) that is a panic unless
    it says otherwise."""
    return load_alarm({"kind": "panic", **data} if isinstance(data, dict) else data, fallback_id)


class ScreenDutySchema(Message):
    on = fields.Boolean(required=True, truthy={True}, falsy={False})


_DUTY = ScreenDutySchema()


def load_screen_duty(data: Any) -> bool:
    """A phone's `duty`: on (True) or off; WireError says what is wrong."""
    try:
        on: bool = _DUTY.load(data if isinstance(data, dict) else {})["on"]
    except ValidationError as exc:
        raise WireError(f"invalid duty: {exc.messages}") from None
    return on
