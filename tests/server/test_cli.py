"""The `fieldlink` command: provisioning works on the database with or without a server."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from harness.server import FIELDLINK
from server.config import reference
from server.store import (
    Event,
    Incident,
    Order,
    Position,
    Unit,
    by_device_token,
    open_database,
    token_digest,
)
from server.store import db as store

README = Path(__file__).resolve().parents[2] / "README.md"


def fieldlink(*args: str, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FIELDLINK, *args, "--db-url", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_units_add_prints_the_unit_with_its_token_and_list_shows_it(tmp_path) -> None:
    db = tmp_path / "new" / "fieldlink.db"
    db.parent.mkdir()
    added = fieldlink(
        "units", "add", "car-07", "--kind", "patrol_car", "--grid", "G12", "--name", "Car 7", db=db
    )
    assert added.returncode == 0, added.stderr
    unit = json.loads(added.stdout)
    assert unit["id"] == "car-07" and unit["kind"] == "patrol_car" and unit["grid"] == "G12"
    assert len(unit["terminal_token"]) >= 24

    listed = json.loads(fieldlink("units", "list", "--json", db=db).stdout)
    assert [u["id"] for u in listed] == ["car-07"]
    assert "car-07" in fieldlink("units", "list", db=db).stdout


def test_device_tokens_are_stored_hashed_rotate_and_a_removed_unit_keeps_its_history(
    tmp_path,
) -> None:
    db = tmp_path / "fieldlink.db"
    token = json.loads(fieldlink("units", "add", "car-1", "--kind", "patrol_car", db=db).stdout)[
        "terminal_token"
    ]
    shown = fieldlink("units", "token", "car-1", db=db)
    assert shown.returncode != 0 and "--rotate" in shown.stderr  # cannot be shown again
    rotated = fieldlink("units", "token", "car-1", "--rotate", db=db)
    assert rotated.returncode == 0, rotated.stderr
    new_token = json.loads(rotated.stdout)["terminal_token"]
    assert new_token != token

    open_database(f"sqlite:///{db}")
    with store.connection_context():
        stored = Unit.get_by_id("car-1").terminal_token_hash
        assert stored == token_digest(new_token) and new_token not in stored
        assert by_device_token(token) is None and by_device_token(new_token).id == "car-1"
        Incident.create(id="inc-1", category="panic")
        Order.create(id="ord-1", incident="inc-1", unit="car-1", sent_at=0)

    held = fieldlink("units", "remove", "car-1", db=db)
    assert held.returncode != 0 and "ord-1" in held.stderr and "cancel or reassign" in held.stderr
    with store.connection_context():
        Order.update(state="cleared").where(Order.id == "ord-1").execute()
    removed = fieldlink("units", "remove", "car-1", db=db)
    assert removed.returncode == 0, removed.stderr

    assert json.loads(fieldlink("units", "list", "--json", db=db).stdout) == []
    again = fieldlink("units", "token", "car-1", "--rotate", db=db)
    assert again.returncode != 0 and "was removed" in again.stderr
    with store.connection_context():
        assert by_device_token(new_token) is None
        assert Order.get_by_id("ord-1").unit_id == "car-1"  # the history stays
        kinds = [e.kind for e in Event.select().where(Event.unit_id == "car-1").order_by(Event.id)]
        assert kinds == ["unit_added", "unit_token_rotated", "unit_removed"]


def test_units_add_refuses_duplicates_bad_ids_and_kinds_with_a_clear_error(tmp_path) -> None:
    db = tmp_path / "fieldlink.db"
    assert fieldlink("units", "add", "car-1", "--kind", "patrol_car", db=db).returncode == 0
    again = fieldlink("units", "add", "car-1", "--kind", "patrol_car", db=db)
    assert again.returncode != 0 and "exists already" in again.stderr
    bad_id = fieldlink("units", "add", "car 1", "--kind", "patrol_car", db=db)
    assert bad_id.returncode != 0 and "A-Z" in bad_id.stderr
    bad_kind = fieldlink("units", "add", "car-2", "--kind", "tank", db=db)
    assert bad_kind.returncode != 0 and "patrol_car" in bad_kind.stderr


def test_readme_documents_every_setting_as_the_code_declares_it() -> None:
    table = subprocess.run(
        [FIELDLINK, "config", "--markdown"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert table in README.read_text()
    assert all(var in table for var, _default, _doc in reference())


def test_old_positions_are_pruned_and_the_pruning_is_audited(tmp_path) -> None:
    db = tmp_path / "fieldlink.db"
    assert fieldlink("units", "add", "vol-1", "--kind", "volunteer", db=db).returncode == 0
    open_database(f"sqlite:///{db}")
    now = time.time()
    with store.connection_context():
        for days in (100, 91, 1):
            Position.create(
                unit="vol-1", ts=now - days * 86_400, lat=31.2, lon=121.4, received_at=now
            )
    done = fieldlink("tracks", "prune", "--older-than-days", "90", db=db)
    assert done.returncode == 0 and "deleted 2 positions" in done.stderr, done.stderr
    with store.connection_context():
        assert Position.select().count() == 1
        assert Event.get(Event.kind == "tracks_pruned").actor.startswith("cli:")
    assert fieldlink("tracks", "prune", "--older-than-days", "0", db=db).returncode != 0
