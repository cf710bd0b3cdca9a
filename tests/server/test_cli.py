"""The `fieldlink` command: provisioning works on the database with or without a server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness.server import FIELDLINK
from server.config import reference

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
