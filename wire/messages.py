"""Payload schemas of wire protocol v1 and the two functions that cross the wire.

Times are UTC epoch seconds (float); speeds m/s; distances and accuracy metres; headings
degrees. Unknown fields are dropped, not fatal, so newer agents can talk to older servers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from wire.topics import UNIT_ID_PATTERN, Channel

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH = 1000
ALARM_KINDS = ("panic", "test")
ORDER_KINDS = ("dispatch", "update", "cancel")
ACK_STATUSES = ("received", "accepted", "declined", "en_route", "on_scene", "cleared")
_ID = validate.Length(min=1, max=64)


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


def _number(**kwargs: Any) -> fields.Float:
    return fields.Float(allow_nan=False, **kwargs)


class _Message(Schema):
    class Meta:
        unknown = EXCLUDE


class FixSchema(_Message):
    ts = _number(required=True, validate=validate.Range(min=0))
    lat = _number(required=True, validate=validate.Range(min=-90, max=90))
    lon = _number(required=True, validate=validate.Range(min=-180, max=180))
    speed = _number(validate=validate.Range(min=0))
    heading = _number(validate=validate.Range(min=0, max=360))
    acc = _number(validate=validate.Range(min=0))
    alt = _number()
    mode = fields.Integer(validate=validate.OneOf((0, 1, 2, 3)))


class BatchSchema(_Message):
    batch = fields.List(
        fields.Nested(FixSchema), required=True, validate=validate.Length(min=1, max=MAX_BATCH)
    )


class AlarmSchema(_Message):
    alarm_id = Text(required=True, validate=_ID)
    ts = _number(required=True, validate=validate.Range(min=0))
    kind = fields.String(required=True, validate=validate.OneOf(ALARM_KINDS))
    fix = fields.Nested(FixSchema)


class AckSchema(_Message):
    order_id = Text(required=True, validate=_ID)
    ts = _number(required=True, validate=validate.Range(min=0))
    status = fields.String(required=True, validate=validate.OneOf(ACK_STATUSES))
    reason = Text(validate=validate.Length(max=500))


class StateSchema(_Message):
    online = fields.Boolean(required=True, truthy={True}, falsy={False})
    ts = _number(required=True, validate=validate.Range(min=0))
    kind = Text(validate=validate.Length(max=32))
    version = Text(validate=validate.Length(max=32))


class HealthSchema(_Message):
    ts = _number(required=True, validate=validate.Range(min=0))
    fix_mode = fields.Integer(required=True, validate=validate.OneOf((0, 1, 2, 3)))
    sats = fields.Integer(required=True, validate=validate.Range(min=0, max=255))
    outbox = fields.Integer(required=True, validate=validate.Range(min=0))
    uptime_s = _number(required=True, validate=validate.Range(min=0))
    dropped = fields.Integer(validate=validate.Range(min=0))
    filtered = fields.Integer(validate=validate.Range(min=0))  # fixes the quality filters dropped
    cpu_temp_c = _number()
    link = Text(validate=validate.Length(max=32))


class LocationSchema(_Message):
    lat = _number(required=True, validate=validate.Range(min=-90, max=90))
    lon = _number(required=True, validate=validate.Range(min=-180, max=180))
    address = Text(load_default="", validate=validate.Length(max=500))


class OrderSchema(_Message):
    order_id = Text(required=True, validate=_ID)
    incident_id = Text(required=True, validate=_ID)
    ts = _number(required=True, validate=validate.Range(min=0))
    kind = fields.String(required=True, validate=validate.OneOf(ORDER_KINDS))
    priority = fields.Integer(required=True, validate=validate.Range(min=1, max=4))
    category = Text(required=True, validate=validate.Length(min=1, max=32))
    summary = Text(load_default="", validate=validate.Length(max=2000))
    location = fields.Nested(LocationSchema, required=True)
    unit_id = Text(validate=validate.Regexp(f"^{UNIT_ID_PATTERN}$"))


_SCHEMAS: dict[Channel, Schema] = {
    Channel.ALARM: AlarmSchema(),
    Channel.ACK: AckSchema(),
    Channel.STATE: StateSchema(),
    Channel.HEALTH: HealthSchema(),
    Channel.ORDERS: OrderSchema(),
}
_FIX = FixSchema()
_BATCH = BatchSchema()


class _NumberRule:
    """One numeric field of a flat schema, read off its marshmallow field and validators."""

    def __init__(self, name: str, field: fields.Field):
        self.name = name
        self.required = field.required
        self.to = int if isinstance(field, fields.Integer) else float
        self.low = self.high = None
        self.low_inclusive = self.high_inclusive = True
        self.choices: frozenset | None = None
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
        if self.choices is not None and value not in self.choices:
            return False
        if self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)
        ):
            return False
        return (
            self.high is None or value < self.high or (value == self.high and self.high_inclusive)
        )


def compile_flat(schema: Schema) -> Callable[[dict], dict | None]:
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

    def check(data: dict) -> dict | None:
        if not required.issubset(data):
            return None
        out = {}
        for key, value in data.items():
            rule = rules.get(key)
            if rule is None or not rule.accepts(value):
                return None
            out[key] = rule.to(value)
        return out

    return check


_quick_fix = compile_flat(_FIX)


def _load_fix(data: Any) -> dict:
    return (isinstance(data, dict) and _quick_fix(data)) or _load(_FIX, data)


def _reject_constant(name: str) -> float:
    raise WireError(f"{name} is not a number JSON allows")


def _parse_json(payload: bytes | str) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES} limit")
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from None


def _load(schema: Schema, data: Any) -> dict:
    if not isinstance(data, dict):
        raise WireError(f"payload must be a JSON object, not {type(data).__name__}")
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise WireError(f"invalid payload: {exc.messages}") from None


def decode(channel: Channel, payload: bytes | str) -> Any:
    """Parse and validate a payload received on `channel`.

    A position payload (one fix or `{"batch": [...]}`) always decodes to a list of fixes.
    Raises WireError with a message fit for a log line or an error answer.
    """
    data = _parse_json(payload)
    if channel is Channel.POSITION:
        if isinstance(data, dict) and "batch" in data:
            return _load(_BATCH, data)["batch"]
        return [_load_fix(data)]
    return _load(_SCHEMAS[channel], data)


def validate_message(channel: Channel, message: dict) -> dict:
    """Validate an outgoing message (a dict) for `channel`; returns the cleaned message."""
    if channel is Channel.POSITION:
        if "batch" in message:
            return _load(_BATCH, message)
        return _load(_FIX, message)
    return _load(_SCHEMAS[channel], message)


def encode(channel: Channel, message: dict) -> bytes:
    """Validate and serialise an outgoing message; raises WireError if it is not valid."""
    clean = validate_message(channel, message)
    return json.dumps(clean, separators=(",", ":"), allow_nan=False).encode()
