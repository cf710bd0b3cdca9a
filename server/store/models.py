"""The store's tables: peewee models, bound to the database `open_database` chose."""

from __future__ import annotations

import secrets

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    ModelSelect,
    TextField,
)

from server.runtime import clock

db = DatabaseProxy()

UNIT_KINDS = ("patrol_car", "motorcycle", "guard_post", "foot", "volunteer")


def new_id() -> str:
    return secrets.token_hex(8)


class BaseModel(Model):
    class Meta:
        database = db
        # An UPDATE names only the columns changed: cheaper to build on the order path, and
        # an instance does not write back what another one changed meanwhile.
        only_save_dirty = True


class Unit(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    kind = CharField(max_length=16, choices=[(k, k) for k in UNIT_KINDS])
    name = CharField(default="")
    grid = CharField(default="", index=True)
    # SHA-256 of the unit's device token (`records.token_digest`); the token itself is shown
    # once when issued. The column keeps its first name: renaming it in place would make
    # peewee rebuild SQLite's table, and dropping the old one cascades to every position.
    terminal_token_hash = CharField(column_name="terminal_token", unique=True, max_length=64)
    status = CharField(default="available", max_length=16)
    status_since = DoubleField(default=clock.now)
    online = BooleanField(default=False)
    online_since = DoubleField(null=True)
    created_at = DoubleField(default=clock.now)
    # the unit's broker password as mosquitto's password file holds it (PBKDF2-SHA512,
    # server/commands/provisioning.py); the clear password is shown once and never stored.
    # NULL: no broker account yet (`fieldlink units bundle` issues one). Nullable so that
    # adding it to an existing SQLite file is a plain ADD COLUMN: a NOT NULL column makes
    # peewee rebuild the table, and dropping the old one would cascade to every position.
    mqtt_password_hash = CharField(null=True, max_length=255)
    # set by a dispatcher; the unit is not recommended while it holds no order (nullable:
    # see above)
    out_of_service = BooleanField(null=True, default=False)
    home_post = CharField(null=True, max_length=64)
    # `fieldlink units remove`: the row stays for the history its orders and alarms make;
    # the unit has no credentials left and is no longer part of the fleet
    removed_at = DoubleField(null=True)


IN_FLEET = Unit.removed_at.is_null()  # every query for the units that work


class Position(BaseModel):
    unit = ForeignKeyField(Unit, backref="positions", on_delete="CASCADE")
    unit_id: str  # what each ForeignKeyField keeps beside its row: the key, read without a query
    ts = DoubleField()
    lat = DoubleField()
    lon = DoubleField()
    speed = DoubleField(null=True)
    heading = DoubleField(null=True)
    acc = DoubleField(null=True)
    alt = DoubleField(null=True)
    mode = IntegerField(null=True)
    received_at = DoubleField()

    class Meta:
        # unit + fix time identifies a fix: a redelivered one is ignored on insert
        indexes = ((("unit", "ts"), True),)


class Incident(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    category = CharField(max_length=32)
    priority = IntegerField(default=1)
    state = CharField(default="new", max_length=16, index=True)
    lat = DoubleField(null=True)
    lon = DoubleField(null=True)
    address = TextField(default="")
    summary = TextField(default="")
    reported_by = CharField(null=True, max_length=64)
    created_at = DoubleField(default=clock.now)
    dispatched_at = DoubleField(null=True)
    on_scene_at = DoubleField(null=True)
    resolved_at = DoubleField(null=True)
    closed_at = DoubleField(null=True)
    # added with dispatcher actions; nullable so an older database takes them as ADD COLUMN
    grid = CharField(null=True, max_length=64, index=True)
    caller_name = CharField(null=True, max_length=200)
    caller_phone = CharField(null=True, max_length=64)
    duty_level = CharField(null=True, max_length=16)
    first_unit = CharField(null=True, max_length=64)  # the first-responsible unit
    handed_over_at = DoubleField(null=True)
    handover = TextField(null=True)  # JSON: kind, to_department, to_unit, reason
    disposition = TextField(null=True)
    followup_at = DoubleField(null=True)
    followup = TextField(null=True)  # JSON: outcome, note, by
    # JSON [{kinds, count}]: units its plan still lacks; sent as soon as any are available
    wanted = TextField(null=True)
    # where the units were sent: alarm_fix, unit_fix, post, last_known, dispatcher
    location_source = CharField(null=True, max_length=16)
    location_age_s = DoubleField(null=True)  # how old the fix it was taken from
    presses = IntegerField(null=True)  # alarms from its unit that joined it (the first too)
    # a second call for the same event: closed, its orders and alarms moved to this one
    merged_into = CharField(null=True, max_length=64, index=True)
    # a summary the server wrote, as a code and its JSON parameters, for each screen to word
    # in its language (`summary` holds the English); a dispatcher's own summary has none
    summary_code = CharField(null=True, max_length=32)
    summary_params = TextField(null=True)
    orders: ModelSelect[Order]  # Order.incident's backref


class Alarm(BaseModel):
    """A press of a unit's panic button. Its id is the unit's own: two units' ids may agree.

    `ts` is when it was pressed (the device's time where plausible, `server/rules/alarms.py`),
    `device_ts` what the device said; an alarm nobody acknowledged in time is escalated.
    """

    id = AutoField()
    alarm_id = CharField(max_length=64)
    unit = ForeignKeyField(Unit, backref="alarms", on_delete="CASCADE")
    unit_id: str
    kind = CharField(max_length=16)
    ts = DoubleField()
    device_ts = DoubleField(null=True)
    lat = DoubleField(null=True)
    lon = DoubleField(null=True)
    received_at = DoubleField()
    incident = ForeignKeyField(Incident, null=True, backref="alarms")
    incident_id: str | None
    dropped = TextField(null=True)  # JSON: what of the message could not be read
    acknowledged_at = DoubleField(null=True)
    acknowledged_by = CharField(null=True, max_length=64)
    escalated_at = DoubleField(null=True)  # to the commanders, when nobody acknowledged it

    class Meta:
        # 0.1 keyed alarms by their id alone, in table "alarm" (`_move_alarms`)
        table_name = "unit_alarm"
        indexes = ((("unit", "alarm_id"), True),)


class Order(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    incident = ForeignKeyField(Incident, backref="orders", on_delete="CASCADE")
    incident_id: str
    unit = ForeignKeyField(Unit, backref="orders", on_delete="CASCADE")
    unit_id: str
    kind = CharField(default="dispatch", max_length=16)
    state = CharField(default="sent", max_length=16, index=True)
    decline_reason = TextField(default="")
    sent_at = DoubleField()
    delivered_at = DoubleField(null=True)
    accepted_at = DoubleField(null=True)
    declined_at = DoubleField(null=True)
    en_route_at = DoubleField(null=True)
    on_scene_at = DoubleField(null=True)
    cleared_at = DoubleField(null=True)
    # added with escalation; nullable so an older database takes them as ADD COLUMN
    cancelled_at = DoubleField(null=True)
    timed_out_at = DoubleField(null=True)
    end_reason = TextField(null=True)  # why it was cancelled or timed out
    ack_deadline = DoubleField(null=True, index=True)  # escalate if not accepted by then
    kinds = CharField(null=True, max_length=200)  # kinds that may replace it (its plan slot)
    crew = TextField(null=True)  # JSON [{id, name}]: the unit's crew when it was sent


class Shift(BaseModel):
    """A crew's time on a unit: signed on at its terminal (one to three officers, the first in
    charge) until it signs off or another crew signs on there."""

    id = AutoField()
    unit = ForeignKeyField(Unit, backref="shifts", on_delete="CASCADE")
    unit_id: str
    crew = TextField()  # JSON [{id, name}]
    started_at = DoubleField()
    ended_at = DoubleField(null=True, index=True)  # NULL: on shift now
    started_by = CharField(max_length=64)
    ended_by = CharField(null=True, max_length=64)


class Grid(BaseModel):
    """A response grid: a GeoJSON polygon; each patrol unit has a home grid."""

    id = CharField(primary_key=True, max_length=64)
    name = CharField(default="")
    geometry = TextField()  # GeoJSON geometry (Polygon or MultiPolygon)


class MapFeature(BaseModel):
    """One street, stretch of water or place name of the console's street map, from the
    city's OpenStreetMap extract (`fieldlink map import`), with the box it lies in."""

    layer = CharField(max_length=8)  # rules/streetmap.py: LAYERS
    kind = CharField(max_length=32)  # a street's class, a waterway's, a place's
    name = CharField(null=True, max_length=200)
    min_zoom = IntegerField()
    west = DoubleField()
    south = DoubleField()
    east = DoubleField()
    north = DoubleField()
    geometry = TextField()  # GeoJSON geometry

    class Meta:
        indexes = ((("min_zoom", "west", "south"), False),)


class Post(BaseModel):
    """A 1/3/5-minute response point."""

    id = CharField(primary_key=True, max_length=64)
    name = CharField(default="")
    tier_min = IntegerField()
    lat = DoubleField()
    lon = DoubleField()
    grid = CharField(null=True, max_length=64)


class Setting(BaseModel):
    """Operational state set at run time and kept across restarts (e.g. the duty level)."""

    key = CharField(primary_key=True, max_length=64)
    value = TextField()
    changed_at = DoubleField(default=clock.now)
    changed_by = CharField(default="", max_length=64)


class Account(BaseModel):
    """A command-centre user: a role, a password for the web login, an API token for REST.

    Only hashes are kept: the password's (werkzeug's scrypt) and the token's SHA-256 (a random
    token needs no slow hash, and its hash can be looked up). `session_key` is part of every
    web session's id: a new one ends the account's open sessions.
    """

    name = CharField(primary_key=True, max_length=48)
    role = CharField(max_length=16)
    password_hash = CharField(max_length=255)
    token_hash = CharField(unique=True, max_length=64)
    session_key = CharField(max_length=32)
    created_at = DoubleField(default=clock.now)


class Event(BaseModel):
    """Append-only audit log: every change, who made it, and when."""

    id = AutoField()  # peewee's implicit key, named for queries that order by it
    ts = DoubleField(default=clock.now, index=True)
    actor = CharField(max_length=64)
    kind = CharField(max_length=32)
    incident_id = CharField(null=True, max_length=64, index=True)
    unit_id = CharField(null=True, max_length=64)
    order_id = CharField(null=True, max_length=64)
    data = TextField(default="{}")
    # the seal (server/store/audit.py): the order entries were sealed in, and the digest
    # that covers this entry and the one before it; both NULL until the sealer's next turn
    seq = BigIntegerField(null=True, unique=True)
    digest = CharField(null=True, max_length=64)


class Alert(BaseModel):
    """What a dispatcher must see and work through (no unit available, no location, an order
    not accepted, an alarm not heard, a unit silent on a call or long on scene): kept until one
    acknowledges it, so every console, and one that reloads, shows the same list."""

    id = AutoField()  # in the order raised, for the list
    kind = CharField(max_length=32)
    incident_id = CharField(null=True, max_length=64)
    unit_id = CharField(null=True, max_length=64)
    order_id = CharField(null=True, max_length=64)
    message = TextField()  # the server's words, for the log and the API
    refs = TextField(default="{}")  # what a console words the alert from, in its language
    raised_at = DoubleField(default=clock.now)
    acknowledged_at = DoubleField(null=True, index=True)
    acknowledged_by = CharField(null=True, max_length=64)


MODELS = (
    Unit,
    Position,
    Incident,
    Alarm,
    Order,
    Event,
    Grid,
    Post,
    Setting,
    Account,
    Alert,
    MapFeature,
    Shift,
)
