"""The store: peewee models and the database chosen by URL (SQLite in WAL mode by default)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    PostgresqlDatabase,
    TextField,
)
from peewee import __exception_wrapper__ as translate_errors  # driver errors -> peewee's
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate

from server import clock
from server.geo import GridMap, GridShape, PostPoint
from server.kpis import IncidentRecord, OrderRecord

log = logging.getLogger(__name__)

db = DatabaseProxy()

UNIT_KINDS = ("patrol_car", "motorcycle", "guard_post", "foot", "volunteer")

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 10_000,
    "foreign_keys": 1,
    "cache_size": -32_000,
}


POSTGRES_SCHEMES = ("postgres://", "postgresql://")
# A request waits up to `timeout` s for a free connection rather than failing at once.
PG_POOL = {"max_connections": 32, "stale_timeout": 300, "timeout": 10}
# SQLite connections are pooled too: opening one and setting its pragmas took ~0.5 ms, more
# than a request's own queries, and every REST request and terminal connect opened one.
SQLITE_POOL = {"max_connections": 64, "stale_timeout": 300, "timeout": 10}


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
    terminal_token = CharField(unique=True, max_length=64)
    status = CharField(default="available", max_length=16)
    status_since = DoubleField(default=clock.now)
    online = BooleanField(default=False)
    online_since = DoubleField(null=True)
    created_at = DoubleField(default=clock.now)
    # the unit's broker password as mosquitto's password file holds it (PBKDF2-SHA512,
    # server/provisioning.py); the clear password is shown once and never stored.
    # NULL: no broker account yet (`fieldlink units bundle` issues one). Nullable so that
    # adding it to an existing SQLite file is a plain ADD COLUMN: a NOT NULL column makes
    # peewee rebuild the table, and dropping the old one would cascade to every position.
    mqtt_password_hash = CharField(null=True, max_length=255)
    # set by a dispatcher; the unit is not recommended while it holds no order (nullable:
    # see above)
    out_of_service = BooleanField(null=True, default=False)
    home_post = CharField(null=True, max_length=64)


class Position(BaseModel):
    unit = ForeignKeyField(Unit, backref="positions", on_delete="CASCADE")
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


class Alarm(BaseModel):
    """A press of a unit's panic button. Its id is the unit's own: two units' ids may agree.

    `ts` is when it was pressed (the device's time where plausible, `server/alarms.py`),
    `device_ts` what the device said; an alarm nobody acknowledged in time is escalated.
    """

    id = AutoField()
    alarm_id = CharField(max_length=64)
    unit = ForeignKeyField(Unit, backref="alarms", on_delete="CASCADE")
    kind = CharField(max_length=16)
    ts = DoubleField()
    device_ts = DoubleField(null=True)
    lat = DoubleField(null=True)
    lon = DoubleField(null=True)
    received_at = DoubleField()
    incident = ForeignKeyField(Incident, null=True, backref="alarms")
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
    unit = ForeignKeyField(Unit, backref="orders", on_delete="CASCADE")
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


class Grid(BaseModel):
    """A response grid: a GeoJSON polygon; each patrol unit has a home grid."""

    id = CharField(primary_key=True, max_length=64)
    name = CharField(default="")
    geometry = TextField()  # GeoJSON geometry (Polygon or MultiPolygon)


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

    ts = DoubleField(default=clock.now, index=True)
    actor = CharField(max_length=64)
    kind = CharField(max_length=32)
    incident_id = CharField(null=True, max_length=64, index=True)
    unit_id = CharField(null=True, max_length=64)
    order_id = CharField(null=True, max_length=64)
    data = TextField(default="{}")


MODELS = (Unit, Position, Incident, Alarm, Order, Event, Grid, Post, Setting, Account)


def open_database(url: str) -> None:
    """Bind the models to the database at `url` and create missing tables.

    Connections are pooled (PostgreSQL's by psycopg 3): every request thread and the worker
    take one and give it back; for PostgreSQL `?max_connections=N&stale_timeout=S` in the URL
    tune the pool.
    """
    if url.startswith("sqlite:"):
        pooled = url.replace("sqlite:", "sqlite+pool:", 1)
        database = connect(pooled, pragmas=SQLITE_PRAGMAS, check_same_thread=False, **SQLITE_POOL)
    elif url.startswith(POSTGRES_SCHEMES):
        rest = url.split("://", 1)[1]
        given = parse_qs(urlsplit(url).query)
        defaults = {k: v for k, v in PG_POOL.items() if k not in given}
        database = connect(f"psycopg3+pool://{rest}", **defaults)
    else:
        database = connect(url)
    db.initialize(database)
    with db.connection_context():
        # columns first: SQLite would take an index on a missing column for one on a
        # string constant ("grid"), and the column's own index would then clash with it
        _add_missing_columns(database)
        db.create_tables(MODELS, safe=True)
        _widen_real_columns(database)
        _move_alarms(database)


# Columns added to existing tables after their first release: create_tables(safe=True)
# leaves a table that exists alone, so a database made by an older version gets them here.
ADDED_COLUMNS = (
    (Unit, "mqtt_password_hash"),
    (Unit, "out_of_service"),
    (Unit, "home_post"),
    *(
        (Incident, name)
        for name in (
            "grid",
            "caller_name",
            "caller_phone",
            "duty_level",
            "first_unit",
            "handed_over_at",
            "handover",
            "disposition",
            "followup_at",
            "followup",
            "wanted",
            "location_source",
            "location_age_s",
            "presses",
        )
    ),
    *(
        (Order, name)
        for name in ("cancelled_at", "timed_out_at", "end_reason", "ack_deadline", "kinds")
    ),
)


def _add_missing_columns(database: Any) -> None:
    migrator = SchemaMigrator.from_database(database)
    tables = set(database.get_tables())
    for model, name in ADDED_COLUMNS:
        table = model._meta.table_name
        if table in tables and name not in {c.name for c in database.get_columns(table)}:
            log.info("adding column %s.%s to an existing database", table, name)
            migrate(migrator.add_column(table, name, model._meta.fields[name]))


def _widen_real_columns(database: Any) -> None:
    """Times and coordinates in 8-byte floats: PostgreSQL's REAL (what 0.1 made of them) holds
    an epoch time only to about two minutes. Widened in place, values kept."""
    if not isinstance(database, PostgresqlDatabase):
        return  # SQLite's REAL is already 8 bytes
    migrator = SchemaMigrator.from_database(database)
    for model in MODELS:
        table = model._meta.table_name
        narrow = {c.name for c in database.get_columns(table) if c.data_type == "real"}
        for field in model._meta.sorted_fields:
            if isinstance(field, DoubleField) and field.column_name in narrow:
                log.info("widening %s.%s to double precision", table, field.column_name)
                migrate(migrator.alter_column_type(table, field.column_name, DoubleField()))


def _move_alarms(database: Any) -> None:
    """0.1's alarms (table "alarm", keyed by the alarm id alone) into "unit_alarm", keyed by
    unit and alarm id: ids come from the units, and two units' may agree."""
    if "alarm" not in database.get_tables():
        return
    log.info("moving alarms to table unit_alarm (keyed by unit and alarm id)")
    with database.atomic():
        database.execute_sql(
            "INSERT INTO unit_alarm (alarm_id, unit_id, kind, ts, device_ts, lat, lon,"
            " received_at, incident_id, acknowledged_at, acknowledged_by)"
            " SELECT alarm_id, unit_id, kind, ts, ts, lat, lon, received_at, incident_id,"
            " received_at, 'before the upgrade' FROM alarm"
        )
        database.execute_sql("DROP TABLE alarm")


def load_grids() -> GridMap:
    return GridMap(
        [GridShape(g.id, g.name, json.loads(g.geometry)) for g in Grid.select().order_by(Grid.id)]
    )


def save_grids(shapes: Iterable[GridShape]) -> int:
    """Replace every grid: a grid file describes the whole city."""
    rows = [{"id": g.grid_id, "name": g.name, "geometry": json.dumps(g.geometry)} for g in shapes]
    with db.atomic():
        Grid.delete().execute()
        for chunk in range(0, len(rows), 100):
            Grid.insert_many(rows[chunk : chunk + 100]).execute()
    return len(rows)


def load_posts() -> list[PostPoint]:
    return [
        PostPoint(p.id, p.name, p.tier_min, p.lat, p.lon, p.grid)
        for p in Post.select().order_by(Post.id)
    ]


def save_posts(posts: Iterable[PostPoint]) -> int:
    """Replace every response post."""
    rows = [
        {
            "id": p.post_id,
            "name": p.name,
            "tier_min": p.tier_min,
            "lat": p.lat,
            "lon": p.lon,
            "grid": p.grid_id,
        }
        for p in posts
    ]
    with db.atomic():
        Post.delete().execute()
        for chunk in range(0, len(rows), 100):
            Post.insert_many(rows[chunk : chunk + 100]).execute()
    return len(rows)


def incident_records(since: float, until: float) -> list[IncidentRecord]:
    """Incidents created in [since, until) with their orders, as the KPIs read them."""
    incidents = list(
        Incident.select().where((Incident.created_at >= since) & (Incident.created_at < until))
    )
    orders: dict[str, list[OrderRecord]] = {i.id: [] for i in incidents}
    if incidents:
        query = (
            Order.select(Order, Unit.kind)
            .join(Unit)
            .where(Order.incident.in_(list(orders)))
            .order_by(Order.sent_at)
        )
        for o in query:
            orders[o.incident_id].append(
                OrderRecord(o.unit_id, o.unit.kind, o.sent_at, o.accepted_at, o.on_scene_at)
            )
    return [
        IncidentRecord(
            i.id,
            i.category,
            i.grid,
            i.created_at,
            i.dispatched_at,
            i.on_scene_at,
            i.resolved_at,
            i.handed_over_at,
            i.closed_at,
            i.followup_at,
            tuple(orders[i.id]),
        )
        for i in incidents
    ]


def unit_track(unit_id: str, since: float, until: float) -> list[dict]:
    """A unit's stored fixes in [since, until), oldest first."""
    query = (
        Position.select(Position.ts, Position.lat, Position.lon, Position.acc, Position.speed)
        .where((Position.unit == unit_id) & (Position.ts >= since) & (Position.ts < until))
        .order_by(Position.ts)
        .dicts()
    )
    return list(query)


class Prepared:
    """A query peewee builds once, run again with fresh values.

    Building a statement costs peewee some 30 times what SQLite takes to run it (~280 us
    against ~9 us for an incident by its id): on the order path, where every ack reads the
    order, its incident and its unit's open orders, building was most of the worker's time.
    `build` takes the values and must use each once, in its argument order; the first run
    checks that, per database (SQLite and PostgreSQL mark values differently).
    """

    def __init__(self, build: Callable[..., Any]):
        self.build = build
        self._sql: dict[str, str] = {}
        self._fields: list[tuple[str, Callable[[Any], Any]]] | None = None  # per column

    def sql(self, values: tuple[Any, ...]) -> str:
        sql = self._sql.get(db.param)
        if sql is None:
            sql, params = self.build(*values).sql()
            if tuple(params) != values:
                raise ValueError(f"{self.build.__qualname__}: values used out of order")
            self._sql[db.param] = sql
        return sql

    def rows(self, *values: Any) -> list[tuple]:
        return db.execute_sql(self.sql(values), values).fetchall()

    def models(self, model: type[Model], *values: Any) -> list[Any]:
        """Rows as model instances, as a select of `model` gives them (peewee's own raw
        queries would match the columns to fields again for every query)."""
        cursor = db.execute_sql(self.sql(values), values)
        if self._fields is None:
            by_column = {f.column_name: f for f in model._meta.sorted_fields}
            fields = [by_column[column[0]] for column in cursor.description]
            self._fields = [(f.name, f.python_value) for f in fields]
        rows = []
        for row in cursor.fetchall():
            data = {
                name: value_of(v) for (name, value_of), v in zip(self._fields, row, strict=True)
            }
            instance = model(__no_default__=1, **data)
            instance._dirty.clear()
            rows.append(instance)
        return rows

    def first(self, model: type[Model], *values: Any) -> Any:
        """The first row as a model instance, or None."""
        found = self.models(model, *values)
        return found[0] if found else None

    def run(self, *values: Any) -> int:
        """An UPDATE or DELETE: the rows it changed."""
        return db.execute_sql(self.sql(values), values).rowcount


_BY_ID = {
    model: Prepared(lambda key, model=model: model.select().where(model._meta.primary_key == key))
    for model in (Order, Incident)
}


def by_id(model: type[Model], key: str) -> Any:
    """An order or an incident by its id (None if there is none), without building SQL."""
    return _BY_ID[model].first(model, key)


# by model and the fields written: the order path writes the same few again and again
_WRITES: dict[tuple[str, type[Model], tuple[str, ...]], Prepared] = {}


def _write(how: str, row: Model, fields: list[Any], build: Callable[..., Any]) -> Prepared:
    key = (how, type(row), tuple(f.name for f in fields))
    if key not in _WRITES:
        _WRITES[key] = Prepared(build)
    return _WRITES[key]


def insert(row: Model) -> None:
    """`Model.create` for a row made in memory (defaults filled in), its INSERT built once."""
    model, meta = type(row), row._meta
    fields = [f for f in meta.sorted_fields if f.name in row.__data__]
    statement = _write(
        "insert", row, fields, lambda *values: model.insert(dict(zip(fields, values, strict=True)))
    )
    statement.run(*(f.db_value(row.__data__[f.name]) for f in fields))
    row._dirty.clear()


def save(row: Model) -> None:
    """`row.save()` for a stored row, its UPDATE of the fields changed built once."""
    model, meta = type(row), row._meta
    fields = [f for f in meta.sorted_fields if f.name in row._dirty and f is not meta.primary_key]
    if not fields:
        return
    statement = _write(
        "update",
        row,
        fields,
        lambda *values: model.update(dict(zip(fields, values[:-1], strict=True))).where(
            meta.primary_key == values[-1]
        ),
    )
    statement.run(*(f.db_value(row.__data__[f.name]) for f in fields), row.get_id())
    row._dirty.clear()


def record_event(actor: str, kind: str, **refs: Any) -> None:
    """Append to the audit log; the incident, unit and order ids are indexed, the rest is data."""
    ids = {k: refs.pop(k, None) for k in ("incident_id", "unit_id", "order_id")}
    insert(Event(actor=actor, kind=kind, data=json.dumps(refs), **ids))


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


def create_unit(
    unit_id: str, kind: str, grid: str = "", name: str = "", home_post: str | None = None
) -> Unit:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}: use one of {', '.join(UNIT_KINDS)}")
    return Unit.create(
        id=unit_id,
        kind=kind,
        grid=grid,
        name=name or unit_id,
        home_post=home_post,
        terminal_token=secrets.token_urlsafe(24),
    )
