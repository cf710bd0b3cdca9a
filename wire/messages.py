"""Payload schemas of wire protocol v1 and the two functions that cross the wire.

Times are UTC epoch seconds (float); speeds m/s; distances and accuracy metres; headings
degrees. Unknown fields are dropped, not fatal, so newer agents can talk to older servers.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from wire.topics import UNIT_ID_PATTERN, Channel

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH = 1000
ALARM_KINDS = ("panic", "test")
ORDER_KINDS = ("dispatch", "update", "cancel")
ACK_STATUSES = ("received", "accepted", "declined", "en_route", "on_scene", "cleared")
# ids (alarms', orders', incidents') are 1-64 of these: a bidi mark or a zero-width space
# in an id would name something a person reading it cannot tell from another
ID_PATTERN = r"[A-Za-z0-9_.:-]{1,64}"
ID_LENGTH = validate.Regexp(f"^{ID_PATTERN}$", error="an id is 1-64 of A-Z a-z 0-9 _ . : -")


# Characters no name, note or id has a use for, which the stores refuse or cannot encode:
# NUL (PostgreSQL text), other control characters but tab and line breaks, and unpaired
# surrogates (not UTF-8).
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def unwritable(text: str) -> str | None:
    """What is wrong with text a person or a device sent, or None when it can be kept."""
    found = _UNWRITABLE.search(text)
    if found is None:
        return None
    return f"control character U+{ord(found.group()):04X} at position {found.start()}"


class Text(fields.String):
    """A string from outside: refused if it holds characters the store cannot keep."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = unwritable(text)
        if problem:
            raise ValidationError(f"{problem}: send plain text")
        return text


class WireError(ValueError):
    """A payload that is not a valid v1 message; the text says what is wrong."""


def _json_number(value: Any) -> bool:
    # bool is an int to Python, and "52.1" a number to marshmallow: neither is a JSON number
    return isinstance(value, int | float) and not isinstance(value, bool)


class JsonNumber(fields.Float):
    """A JSON number, never a string holding one (a sender that quotes numbers has a bug)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not _json_number(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class JsonInteger(fields.Integer):
    """A JSON whole number: not "3", not 3.5, not true."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not _json_number(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def number(**kwargs: Any) -> fields.Float:
    """A float field that refuses NaN and the infinities (no JSON can carry them)."""
    return JsonNumber(allow_nan=False, **kwargs)


class Message(Schema):
    class Meta:
        unknown = EXCLUDE


class FixSchema(Message):
    ts = number(required=True, validate=validate.Range(min=0))
    lat = number(required=True, validate=validate.Range(min=-90, max=90))
    lon = number(required=True, validate=validate.Range(min=-180, max=180))
    speed = number(validate=validate.Range(min=0))
    heading = number(validate=validate.Range(min=0, max=360))
    acc = number(validate=validate.Range(min=0))
    alt = number()
    mode = JsonInteger(validate=validate.OneOf((0, 1, 2, 3)))


class BatchSchema(Message):
    batch = fields.List(
        fields.Nested(FixSchema), required=True, validate=validate.Length(min=1, max=MAX_BATCH)
    )


class AlarmSchema(Message):
    alarm_id = Text(required=True, validate=ID_LENGTH)
    ts = number(required=True, validate=validate.Range(min=0))
    kind = fields.String(required=True, validate=validate.OneOf(ALARM_KINDS))
    fix = fields.Nested(FixSchema)


class AckSchema(Message):
    order_id = Text(required=True, validate=ID_LENGTH)
    ts = number(required=True, validate=validate.Range(min=0))
    status = fields.String(required=True, validate=validate.OneOf(ACK_STATUSES))
    reason = Text(validate=validate.Length(max=500))


class StateSchema(Message):
    online = fields.Boolean(required=True, truthy={True}, falsy={False})
    ts = number(required=True, validate=validate.Range(min=0))
    kind = Text(validate=validate.Length(max=32))
    version = Text(validate=validate.Length(max=32))


class HealthSchema(Message):
    ts = number(required=True, validate=validate.Range(min=0))
    fix_mode = JsonInteger(required=True, validate=validate.OneOf((0, 1, 2, 3)))
    sats = JsonInteger(required=True, validate=validate.Range(min=0, max=255))
    outbox = JsonInteger(required=True, validate=validate.Range(min=0))
    unconfirmed = JsonInteger(validate=validate.Range(min=0))  # sent, not yet stored
    uptime_s = number(required=True, validate=validate.Range(min=0))
    dropped = JsonInteger(validate=validate.Range(min=0))
    filtered = JsonInteger(validate=validate.Range(min=0))  # fixes the quality filters dropped
    cpu_temp_c = number()
    link = Text(validate=validate.Length(max=32))
    gpio = Text(validate=validate.Length(max=32))  # the pin factory driving the buttons
    # where the unit's times come from: system (synced), gps (not yet), unsynced (no fix yet)
    clock = fields.String(validate=validate.OneOf(("system", "gps", "unsynced")))
    clock_synced_at = number(allow_none=True, validate=validate.Range(min=0))


class AckKeySchema(Message):
    order_id = Text(required=True, validate=ID_LENGTH)
    status = fields.String(required=True, validate=validate.OneOf(ACK_STATUSES))


class ReceiptSchema(Message):
    """Server -> unit: stored. Alarms and acks by their ids; positions up to a fix time."""

    ts = number(required=True, validate=validate.Range(min=0))
    alarms = fields.List(Text(validate=ID_LENGTH), validate=validate.Length(max=MAX_BATCH))
    acks = fields.List(fields.Nested(AckKeySchema), validate=validate.Length(max=MAX_BATCH))
    positions = number(validate=validate.Range(min=0))  # every fix up to this time is stored


class CallUnitSchema(Message):
    unit_id = Text(required=True, validate=validate.Regexp(f"^{UNIT_ID_PATTERN}$"))
    name = Text(load_default="", validate=validate.Length(max=200))
    state = fields.String(required=True, validate=validate.Length(max=16))
    eta_s = number(allow_none=True, validate=validate.Range(min=0))


class CallSchema(Message):
    """Server -> unit: how the unit's own call for help goes, for its lights and screen."""

    ts = number(required=True, validate=validate.Range(min=0))
    incident_id = Text(required=True, validate=ID_LENGTH)
    state = fields.String(required=True, validate=validate.Length(max=16))
    presses = JsonInteger(allow_none=True, validate=validate.Range(min=1))
    units = fields.List(fields.Nested(CallUnitSchema), load_default=list)


class ServerSchema(Message):
    """Server -> every unit: it is connected; `kept`: the broker had kept its queue."""

    online = fields.Boolean(required=True, truthy={True}, falsy={False})
    ts = number(required=True, validate=validate.Range(min=0))
    kept = fields.Boolean(required=True, truthy={True}, falsy={False})


class LocationSchema(Message):
    lat = number(required=True, validate=validate.Range(min=-90, max=90))
    lon = number(required=True, validate=validate.Range(min=-180, max=180))
    address = Text(load_default="", validate=validate.Length(max=500))


class OrderSchema(Message):
    order_id = Text(required=True, validate=ID_LENGTH)
    incident_id = Text(required=True, validate=ID_LENGTH)
    ts = number(required=True, validate=validate.Range(min=0))
    kind = fields.String(required=True, validate=validate.OneOf(ORDER_KINDS))
    priority = JsonInteger(required=True, validate=validate.Range(min=1, max=4))
    category = Text(required=True, validate=validate.Length(min=1, max=32))
    summary = Text(load_default="", validate=validate.Length(max=2000))
    # a summary the server wrote, as a code and its values, for a screen to word in its
    # language; `summary` holds the English (an agent or screen before these ignores them)
    summary_code = Text(validate=validate.Length(max=32))
    summary_params = fields.Dict(keys=Text(), values=Text(validate=validate.Length(max=500)))
    location = fields.Nested(LocationSchema, required=True)
    unit_id = Text(validate=validate.Regexp(f"^{UNIT_ID_PATTERN}$"))


_SCHEMAS: dict[Channel, Schema] = {
    Channel.ALARM: AlarmSchema(),
    Channel.ACK: AckSchema(),
    Channel.STATE: StateSchema(),
    Channel.HEALTH: HealthSchema(),
    Channel.ORDERS: OrderSchema(),
    Channel.RECEIPT: ReceiptSchema(),
    Channel.CALL: CallSchema(),
    Channel.SERVER: ServerSchema(),
}
_FIX = FixSchema()
_BATCH = BatchSchema()


class _NumberRule:
    """One numeric field of a flat schema, read off its marshmallow field and validators."""

    def __init__(self, name: str, field: fields.Float | fields.Integer):
        self.name = name
        self.required = field.required
        self.to: type[int] | type[float] = int if isinstance(field, fields.Integer) else float
        self.low: float | None = None
        self.high: float | None = None
        self.low_inclusive = self.high_inclusive = True
        self.choices: frozenset[Any] | None = None
        for rule in field.validators:
            if isinstance(rule, validate.Range):
                self.low, self.high = rule.min, rule.max
                self.low_inclusive, self.high_inclusive = rule.min_inclusive, rule.max_inclusive
            elif isinstance(rule, validate.OneOf):
                self.choices = frozenset(rule.choices)
            else:
                raise TypeError(f"no fast check for {type(rule).__name__} on {name}")

    def accepts(self, value: Any) -> bool:
        if type(value) is not int and (type(value) is not float or self.to is int):
            return False  # strings, bools, floats for integers: the schema decides
        if value - value != 0:
            return False  # infinity or NaN: the schema refuses it, saying which
        if self.choices is not None and value not in self.choices:
            return False
        if self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)
        ):
            return False
        return (
            self.high is None or value < self.high or (value == self.high and self.high_inclusive)
        )


def compile_flat(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """A quick check equivalent to `schema.load` for plain, valid, flat numeric payloads.

    It returns the loaded dict only when every key is a declared field holding a plain
    number that passes that field's own validators, else None, and the caller asks the
    schema itself (which accepts or explains). The rules are read from the schema, so
    there is still one contract; the point is a fix costs a few microseconds, not 25.
    """
    rules = {}
    for name, field in schema.fields.items():
        if not isinstance(field, (fields.Float, fields.Integer)) or field.data_key:
            raise TypeError(f"{type(schema).__name__}.{name} is not a plain number field")
        rules[name] = _NumberRule(name, field)
    required = frozenset(name for name, rule in rules.items() if rule.required)

    def check(data: dict[str, Any]) -> dict[str, Any] | None:
        if not required.issubset(data):
            return None
        out: dict[str, Any] = {}
        for key, value in data.items():
            rule = rules.get(key)
            if rule is None or not rule.accepts(value):
                return None
            out[key] = rule.to(value)
        return out

    return check


_quick_fix = compile_flat(_FIX)


def _load_fix(data: Any) -> dict[str, Any]:
    return (isinstance(data, dict) and _quick_fix(data)) or _load(_FIX, data)


# What a v1 message ever needs, checked before the parser recurses or converts: JSON nested
# a thousand deep (RecursionError) or a number of thousands of digits (ValueError,
# OverflowError) must be refused like any other bad payload, not escape as another error.
MAX_DEPTH = 16
MAX_NUMBER_CHARS = 40
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_STRING = re.compile(rb'"[^"]*"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(text: bytes | str) -> int:
    """How deep arrays and objects nest in JSON `text`, brackets inside strings not counted.

    Each step runs in C (the escapes out, then all but brackets and quotes, then the
    strings), so a batch of a thousand fixes costs well under a millisecond.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    structure = _STRING.sub(b"", _ESCAPE.sub(b"", raw).translate(None, _NOT_STRUCTURE))
    structure = structure.translate(None, b'"')  # an unclosed string's quote: invalid anyway
    return max(accumulate(map(_STEP.__getitem__, structure)), default=0)


def _reject_constant(name: str) -> float:
    raise WireError(f"{name} is not a number JSON allows")


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise WireError(f"a number of {len(text)} characters: at most {MAX_NUMBER_CHARS}")
    return int(text)


def _decimal(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER_CHARS or not math.isfinite(value):
        raise WireError(f"number {text[:20]!r} is not one a message carries")
    return value


# made once: json.loads with hooks builds a decoder per call, which cost more than the hooks
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_integer, parse_float=_decimal
)


def parse_json(payload: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    """JSON from outside, within the limits of size, nesting and number length; anything
    else is a WireError that says why. Bytes must be UTF-8 (no BOM, no UTF-16)."""
    if len(payload) > max_bytes:
        raise WireError(f"payload of {len(payload)} bytes is over the {max_bytes} limit")
    if isinstance(payload, bytes):
        opening_brackets = payload.count(b"[") + payload.count(b"{")
    else:
        opening_brackets = payload.count("[") + payload.count("{")
    few = opening_brackets <= MAX_DEPTH  # then surely not too deep
    if not few and nesting_depth(payload) > MAX_DEPTH:
        raise WireError(f"payload nests deeper than {MAX_DEPTH} levels")
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        if text.startswith("\ufeff"):
            raise WireError("payload starts with a byte-order mark: send UTF-8 without one")
        return _DECODER.decode(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from None


def _load(schema: Schema, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WireError(f"payload must be a JSON object, not {type(data).__name__}")
    try:
        loaded: dict[str, Any] = schema.load(data)  # one object in, one dict out
        return loaded
    except ValidationError as exc:
        raise WireError(f"invalid payload: {exc.messages}") from None
    except ArithmeticError as exc:  # e.g. an integer too large for a float, built in process
        raise WireError(f"invalid payload: {exc}") from None


def fix_problem(fix: Any) -> str | None:
    """What makes `fix` not a v1 fix, or None: the one rule the agent's filters and the
    server both apply, so a fix the agent keeps (and an alarm carries) always validates."""
    if isinstance(fix, dict) and _quick_fix(fix):
        return None
    try:
        _load(_FIX, fix)
    except WireError as exc:
        return str(exc)
    return None


def load_alarm(data: Any, fallback_id: str, dropped: list[str] | None = None) -> dict[str, Any]:
    """An alarm is never refused for what travels with it: somebody pressed a button.

    What cannot be read is left out and named in `dropped`: an invalid fix goes (the
    server places the alarm otherwise), an unreadable kind is a panic, an unreadable time
    is None (the server takes the time the alarm came), and an unreadable id becomes
    `fallback_id` (made from the payload, so that a redelivery is still recognised).
    """
    dropped = list(dropped or [])
    alarm: dict[str, Any] = {}
    if data is None and dropped:
        pass  # nothing could be read: `dropped` says why
    elif not isinstance(data, dict):
        dropped.append(f"payload is a JSON {type(data).__name__}, not an object")
    else:
        try:
            alarm = _SCHEMAS[Channel.ALARM].load(data)
        except ValidationError as exc:
            problems = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
            assert isinstance(exc.valid_data, dict)  # one object loaded: its valid fields
            alarm = {k: v for k, v in exc.valid_data.items() if k not in problems}
            dropped += [f"{name}: {problem}" for name, problem in problems.items()]
    alarm.setdefault("alarm_id", fallback_id)
    alarm.setdefault("kind", "panic")
    alarm.setdefault("ts", None)
    if dropped:
        alarm["dropped"] = dropped
    return alarm


def _decode_alarm(payload: bytes | str) -> dict[str, Any]:
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    fallback_id = "payload-" + hashlib.sha256(raw).hexdigest()[:32]
    try:
        return load_alarm(parse_json(payload), fallback_id)
    except WireError as exc:
        return load_alarm(None, fallback_id, [str(exc)])


def decode(channel: Channel, payload: bytes | str) -> Any:
    """Parse and validate a payload received on `channel`.

    A position payload (one fix or `{"batch": [...]}`) always decodes to a list of fixes.
    An alarm always decodes (`_decode_alarm`). Otherwise raises WireError with a message
    fit for a log line or an error answer.
    """
    if channel is Channel.ALARM:
        return _decode_alarm(payload)
    data = parse_json(payload)
    if channel is Channel.POSITION:
        if isinstance(data, dict) and "batch" in data:
            return _load(_BATCH, data)["batch"]
        return [_load_fix(data)]
    return _load(_SCHEMAS[channel], data)


def validate_message(channel: Channel, message: dict[str, Any]) -> dict[str, Any]:
    """Validate an outgoing message (a dict) for `channel`; returns the cleaned message."""
    if channel is Channel.POSITION:
        if "batch" in message:
            return _load(_BATCH, message)
        return _load(_FIX, message)
    return _load(_SCHEMAS[channel], message)


def encode(channel: Channel, message: dict[str, Any]) -> bytes:
    """Validate and serialise an outgoing message; raises WireError if it is not valid."""
    clean = validate_message(channel, message)
    return json.dumps(clean, separators=(",", ":"), allow_nan=False).encode()
