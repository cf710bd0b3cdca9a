"""The store: peewee models and the database chosen by URL (SQLite in WAL mode by default)."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from peewee import (
    BooleanField,
    CharField,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)
from peewee import __exception_wrapper__ as translate_errors  # driver errors -> peewee's
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate

log = logging.getLogger(__name__)

db = DatabaseProxy()

UNIT_KINDS = ("patrol_car", "motorcycle", "guard_post", "foot", "volunteer")
ORDER_STATES = ("sent", "delivered", "accepted", "declined", "en_route", "on_scene", "cleared")
OPEN_ORDER_STATES = ("sent", "delivered", "accepted", "en_route", "on_scene")
INCIDENT_STATES = ("new", "dispatched", "on_scene", "resolved", "closed")

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 10_000,
    "foreign_keys": 1,
    "cache_size": -32_000,
}


def new_id() -> str:
    return secrets.token_hex(8)


class BaseModel(Model):
    class Meta:
        database = db


class Unit(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    kind = CharField(max_length=16, choices=[(k, k) for k in UNIT_KINDS])
    name = CharField(default="")
    grid = CharField(default="", index=True)
    terminal_token = CharField(unique=True, max_length=64)
    status = CharField(default="available", max_length=16)
    status_since = FloatField(default=time.time)
    online = BooleanField(default=False)
    online_since = FloatField(null=True)
    created_at = FloatField(default=time.time)
    # the unit's broker password as mosquitto's password file holds it (PBKDF2-SHA512,
    # server/provisioning.py); the clear password is shown once and never stored.
    # NULL: no broker account yet (`fieldlink units bundle` issues one). Nullable so that
    # adding it to an existing SQLite file is a plain ADD COLUMN: a NOT NULL column makes
    # peewee rebuild the table, and dropping the old one would cascade to every position.
    mqtt_password_hash = CharField(null=True, max_length=255)


class Position(BaseModel):
    unit = ForeignKeyField(Unit, backref="positions", on_delete="CASCADE")
    ts = FloatField()
    lat = FloatField()
    lon = FloatField()
    speed = FloatField(null=True)
    heading = FloatField(null=True)
    acc = FloatField(null=True)
    alt = FloatField(null=True)
    mode = IntegerField(null=True)
    received_at = FloatField()

    class Meta:
        # unit + fix time identifies a fix: a redelivered one is ignored on insert
        indexes = ((("unit", "ts"), True),)


class Incident(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    category = CharField(max_length=32)
    priority = IntegerField(default=1)
    state = CharField(default="new", max_length=16, index=True)
    lat = FloatField(null=True)
    lon = FloatField(null=True)
    address = TextField(default="")
    summary = TextField(default="")
    reported_by = CharField(null=True, max_length=64)
    created_at = FloatField(default=time.time)
    dispatched_at = FloatField(null=True)
    on_scene_at = FloatField(null=True)
    resolved_at = FloatField(null=True)
    closed_at = FloatField(null=True)


class Alarm(BaseModel):
    alarm_id = CharField(primary_key=True, max_length=64)
    unit = ForeignKeyField(Unit, backref="alarms", on_delete="CASCADE")
    kind = CharField(max_length=16)
    ts = FloatField()
    lat = FloatField(null=True)
    lon = FloatField(null=True)
    received_at = FloatField()
    incident = ForeignKeyField(Incident, null=True, backref="alarms")


class Order(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    incident = ForeignKeyField(Incident, backref="orders", on_delete="CASCADE")
    unit = ForeignKeyField(Unit, backref="orders", on_delete="CASCADE")
    kind = CharField(default="dispatch", max_length=16)
    state = CharField(default="sent", max_length=16, index=True)
    decline_reason = TextField(default="")
    sent_at = FloatField()
    delivered_at = FloatField(null=True)
    accepted_at = FloatField(null=True)
    declined_at = FloatField(null=True)
    en_route_at = FloatField(null=True)
    on_scene_at = FloatField(null=True)
    cleared_at = FloatField(null=True)


class Event(BaseModel):
    """Append-only audit log: every change, who made it, and when."""

    ts = FloatField(default=time.time, index=True)
    actor = CharField(max_length=64)
    kind = CharField(max_length=32)
    incident_id = CharField(null=True, max_length=64, index=True)
    unit_id = CharField(null=True, max_length=64)
    order_id = CharField(null=True, max_length=64)
    data = TextField(default="{}")


MODELS = (Unit, Position, Incident, Alarm, Order, Event)


def open_database(url: str) -> None:
    """Bind the models to the database at `url` and create missing tables."""
    if url.startswith("sqlite"):
        database = connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    else:
        database = connect(url)
    db.initialize(database)
    with db.connection_context():
        db.create_tables(MODELS, safe=True)
        _add_missing_columns(database)


# Columns added to existing tables after their first release: create_tables(safe=True)
# leaves a table that exists alone, so a database made by an older version gets them here.
ADDED_COLUMNS = ((Unit, "mqtt_password_hash"),)


def _add_missing_columns(database: Any) -> None:
    migrator = SchemaMigrator.from_database(database)
    for model, name in ADDED_COLUMNS:
        table = model._meta.table_name
        if name not in {c.name for c in database.get_columns(table)}:
            log.info("adding column %s.%s to an existing database", table, name)
            migrate(migrator.add_column(table, name, model._meta.fields[name]))


def record_event(actor: str, kind: str, **refs: Any) -> Event:
    """Append to the audit log; the incident, unit and order ids are indexed, the rest is data."""
    ids = {k: refs.pop(k, None) for k in ("incident_id", "unit_id", "order_id")}
    return Event.create(actor=actor, kind=kind, data=json.dumps(refs), **ids)


POSITION_COLUMNS = (
    "unit_id",
    "ts",
    "lat",
    "lon",
    "speed",
    "heading",
    "acc",
    "alt",
    "mode",
    "received_at",
)


def insert_positions(rows: Iterable[dict]) -> int:
    """Batched insert; fixes already stored (same unit and time) are ignored.

    One prepared statement executed over the batch: building peewee queries row by row
    cost more than SQLite's own work at thousands of fixes a second.
    """
    values = [tuple(row.get(c) for c in POSITION_COLUMNS) for row in rows]
    if not values:
        return 0
    table = Position._meta.table_name
    marks = ", ".join([db.param] * len(POSITION_COLUMNS))
    sql = f"INSERT INTO {table} ({', '.join(POSITION_COLUMNS)}) VALUES ({marks}) "
    sql += "ON CONFLICT DO NOTHING"
    with db.atomic(), translate_errors:
        db.cursor().executemany(sql, values)
    return len(values)


def create_unit(unit_id: str, kind: str, grid: str = "", name: str = "") -> Unit:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}: use one of {', '.join(UNIT_KINDS)}")
    return Unit.create(
        id=unit_id,
        kind=kind,
        grid=grid,
        name=name or unit_id,
        terminal_token=secrets.token_urlsafe(24),
    )
