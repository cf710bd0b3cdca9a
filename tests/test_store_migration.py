"""A database made by an earlier release opens in this one: new columns and tables are added
in place, and every row is still there (positions cascade from units, so a table rebuild
would lose them)."""

from __future__ import annotations

import sqlite3

from server.store import ADDED_COLUMNS, MODELS, Incident, Order, Position, Unit, db, open_database
from tests.conftest import DATA
from tests.harness import ServerProcess


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


def test_a_server_runs_on_an_old_database(tmp_path, mosquitto) -> None:
    old_database(tmp_path / "fieldlink.db")
    server = ServerProcess(tmp_path, mosquitto.url).start()
    try:
        [incident] = server.get("/api/v1/incidents")
        assert incident["id"] == "inc-1" and incident["state"] == "dispatched"
        detail = server.get("/api/v1/incidents/inc-1")
        assert detail["orders"][0]["state"] == "accepted"
        assert server.get("/api/v1/incidents/inc-1/timeline")[0]["kind"] == "order_sent"
        assert {u["id"] for u in server.get("/api/v1/units")} == {"car-1", "kiosk-1"}
    finally:
        server.stop()
