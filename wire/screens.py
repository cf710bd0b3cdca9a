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
    SHIFT = "shift"  # screen -> server: the crew signing on (one to three officers) or off


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


CREW_MOST = 3  # a patrol car's crew: one to three officers


class OfficerSchema(Message):
    # the badge (warrant) number
    id = Text(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,32}$", error="1-32 of A-Z a-z 0-9 _ . : -"),
    )
    name = Text(
        required=True,
        validate=[validate.Length(max=100), validate.Regexp(r"\s*\S", error="a name, not blank")],
    )


def _each_once(crew: list[dict[str, Any]]) -> None:
    ids = [officer["id"] for officer in crew]
    if len(set(ids)) != len(ids):
        raise ValidationError("an officer is on the crew once")


def crew_list(**kwargs: Any) -> fields.List[Any]:
    """A crew as it signs on: one to three officers, the one in charge first; [] signs off."""
    return fields.List(
        fields.Nested(OfficerSchema),
        required=True,
        validate=[validate.Length(max=CREW_MOST), _each_once],
        **kwargs,
    )


class ScreenShiftSchema(Message):
    crew = crew_list()


_SHIFT = ScreenShiftSchema()


def load_screen_shift(data: Any) -> list[dict[str, str]]:
    """A screen's `shift`: the crew signing on, [] when it signs off; WireError says what is
    wrong."""
    try:
        crew: list[dict[str, str]] = _SHIFT.load(data if isinstance(data, dict) else {})["crew"]
    except ValidationError as exc:
        raise WireError(f"invalid shift: {exc.messages}") from None
    # names as people type them: spaces around are not part of them
    return [{"id": o["id"], "name": o["name"].strip()} for o in crew]
