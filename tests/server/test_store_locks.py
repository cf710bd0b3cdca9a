"""The worker reads, then writes, while the store writer commits positions on its own
connection: on SQLite (WAL) a read still open when the worker writes cannot become a
write once another connection has committed, and fails at once with "database is locked"."""

from __future__ import annotations

import threading

from server.orders import dispatching
from server.store import Incident, Setting, db, open_database

WANTED = '[{"kinds": ["patrol_car"], "count": 1}]'


def commit_elsewhere(value: str) -> None:
    """A write on another thread's connection, as the store writer's batches are."""

    def write() -> None:
        with db.connection_context():
            Setting.replace(key="elsewhere", value=value).execute()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()


def test_incidents_still_wanting_units_are_filled_while_another_connection_writes(
    tmp_path, monkeypatch
) -> None:
    open_database(f"sqlite:///{tmp_path / 'fieldlink.db'}")
    with db.connection_context():
        for n in range(3):
            Incident.create(id=f"i{n}", category="help", wanted=WANTED, lat=31.2, lon=121.4)
    filled: list[str] = []

    def finish_fill(_book, incident_id: str, *_args, **_kwargs) -> None:
        commit_elsewhere(incident_id)  # positions stored meanwhile
        Incident.update(wanted=None).where(Incident.id == incident_id).execute()
        filled.append(incident_id)

    monkeypatch.setattr(dispatching, "finish_fill", finish_fill)  # only the pass that fills
    with db.connection_context():
        dispatching.fill_wanted(None)
        assert sorted(filled) == ["i0", "i1", "i2"]
        assert Incident.select().where(Incident.wanted.is_null(False)).count() == 0
