"""A database made by an earlier release opens in this one: new columns and tables are added
in place, and every row is still there (positions cascade from units, so a table rebuild
would lose them)."""

from __future__ import annotations

import sqlite3

from playhouse.migrate import SchemaMigrator, migrate

from harness.server import ServerProcess
from harness.stores import POSTGRES_URL, new_postgres_database
from server.store import (
    ADDED_COLUMNS,
    MODELS,
    Incident,
    Order,
    Position,
    Unit,
    by_device_token,
    db,
    open_database,
    token_digest,
)
from tests.conftest import DATA, SERVER_SETTINGS


def old_database(path) -> str:
    con = sqlite3.connect(path)
    con.executescript((DATA / "store_v0_1.sql").read_text())
    con.close()
    return f"sqlite:///{path}"


def test_an_old_database_gains_the_new_columns_and_keeps_its_rows(tmp_path) -> None:
    open_database(old_database(tmp_path / "fieldlink.db"))
    with db.connection_context():
        for model, name in ADDED_COLUMNS:
            columns = {c.name for c in db.get_columns(model._meta.table_name)}
            assert name in columns, (model.__name__, name)
        assert {m._meta.table_name for m in MODELS} <= set(db.get_tables())
        assert Unit.select().count() == 2 and Position.select().count() == 1
        order = Order.get_by_id("ord-1")
        assert order.state == "accepted" and order.ack_deadline is None
        assert Incident.get_by_id("inc-1").grid is None
        assert not Unit.get_by_id("car-1").out_of_service
        # device tokens kept in clear become their digests: the screens still get in
        assert Unit.get_by_id("car-1").terminal_token_hash == token_digest("tok-car-1")
        assert by_device_token("tok-kiosk-1").id == "kiosk-1"


def test_a_server_runs_on_an_old_database(tmp_path, mosquitto) -> None:
    url = old_database(tmp_path / "fieldlink.db")
    server = ServerProcess(tmp_path, mosquitto.url, db_url=url, **SERVER_SETTINGS).start()
    try:
        [incident] = server.get("/api/v1/incidents")
        assert incident["id"] == "inc-1" and incident["state"] == "dispatched"
        detail = server.get("/api/v1/incidents/inc-1")
        assert detail["orders"][0]["state"] == "accepted"
        assert server.get("/api/v1/incidents/inc-1/timeline")[0]["kind"] == "order_sent"
        assert {u["id"] for u in server.get("/api/v1/units")} == {"car-1", "kiosk-1"}
    finally:
        server.stop()


def test_a_postgresql_install_from_0_1_is_upgraded_in_place(mosquitto, tmp_path) -> None:
    """0.1 on PostgreSQL: the columns added since missing, times and coordinates in REAL
    (4 bytes: an epoch time to about two minutes). Opened by this release, the columns are
    added, the REALs widened, no row lost; then a server runs on it."""
    url = f"{POSTGRES_URL}/{new_postgres_database(POSTGRES_URL)}"
    open_database(url)
    with db.connection_context():
        database = db.obj
        migrator = SchemaMigrator.from_database(database)
        for model, name in ADDED_COLUMNS:
            migrate(migrator.drop_column(model._meta.table_name, name))
        database.execute_sql('ALTER TABLE "position" ALTER COLUMN ts TYPE real')
        database.execute_sql('ALTER TABLE "position" ALTER COLUMN lat TYPE real')
        database.execute_sql(
            "INSERT INTO unit (id, kind, grid, name, terminal_token, online,"
            " status, status_since, created_at) VALUES ('car-1', 'patrol_car',"
            " 'G1', 'Car 1', 'tok', false, 'available', 0, 0)"
        )
        database.execute_sql(
            "INSERT INTO position (unit_id, ts, lat, lon, received_at)"
            " VALUES ('car-1', 1800000000, 31.25, 121.5, 1800000000)"
        )

    open_database(url)
    with db.connection_context():
        types = {c.name: c.data_type for c in db.get_columns("position")}
        assert types["ts"] == types["lat"] == "double precision"
        for model, name in ADDED_COLUMNS:
            assert name in {c.name for c in db.get_columns(model._meta.table_name)}
        assert Position.select().count() == 1 and Unit.get_by_id("car-1").name == "Car 1"
        Position.create(unit="car-1", ts=1_800_000_000.25, lat=31.2345678, lon=121.5, received_at=0)
        stored = Position.select().order_by(Position.ts.desc()).get()
        assert stored.ts == 1_800_000_000.25 and stored.lat == 31.2345678  # 8 bytes now

    server = ServerProcess(tmp_path, mosquitto.url, db_url=url, **SERVER_SETTINGS).start()
    try:
        assert [u["id"] for u in server.get("/api/v1/units")] == ["car-1"]
        with db.connection_context():
            assert by_device_token("tok").id == "car-1"
    finally:
        server.stop()
