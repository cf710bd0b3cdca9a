"""The database chosen by URL (SQLite in WAL mode by default, PostgreSQL pooled), its
tables made, and a database of an older release upgraded in place."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from peewee import DoubleField, PostgresqlDatabase
from playhouse.db_url import connect
from playhouse.migrate import SchemaMigrator, migrate

from server.store.models import MODELS, Event, Incident, Order, Unit, db
from server.store.records import token_digest

log = logging.getLogger(__name__)

DIGEST = re.compile(r"[0-9a-f]{64}")

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
        _hash_clear_device_tokens()


# Columns added to existing tables after their first release: create_tables(safe=True)
# leaves a table that exists alone, so a database made by an older version gets them here.
ADDED_COLUMNS = (
    (Unit, "mqtt_password_hash"),
    (Unit, "out_of_service"),
    (Unit, "home_post"),
    (Unit, "removed_at"),
    (Event, "seq"),
    (Event, "digest"),
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
            "merged_into",
            "summary_code",
            "summary_params",
        )
    ),
    *(
        (Order, name)
        for name in ("cancelled_at", "timed_out_at", "end_reason", "ack_deadline", "kinds", "crew")
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


def _hash_clear_device_tokens() -> None:
    """Earlier databases kept device tokens in clear: each becomes its digest, so the
    screens keep working and a copy of the database lets no one connect as a unit. A
    digest is 64 hex characters; a clear token (32 URL-safe characters) never is."""
    clear = [
        unit
        for unit in Unit.select(Unit.id, Unit.terminal_token_hash)
        if not DIGEST.fullmatch(unit.terminal_token_hash)
    ]
    if clear:
        log.info("storing %d units' device tokens hashed", len(clear))
    with db.atomic():
        for unit in clear:
            unit.terminal_token_hash = token_digest(unit.terminal_token_hash)
            unit.save(only=[Unit.terminal_token_hash])
