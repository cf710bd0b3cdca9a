"""The audit trail as a review uses it: sealed by the running server, checked and exported by
`fieldlink audit`, and a changed or removed entry found."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import date, timedelta

from harness.waiting import eventually
from server.store import Event, db
from server.store import audit as trail


def fieldlink_audit(server, *args: str) -> subprocess.CompletedProcess:
    return server.command("audit", *args)


def test_the_trail_is_sealed_exported_and_a_changed_or_missing_entry_is_found(
    server_factory,
) -> None:
    server = server_factory().start()
    body = {"category": "help", "priority": 2, "location": {"lat": 31.2, "lon": 121.4}}
    for _ in range(3):
        assert server.call("POST", "/api/v1/incidents", body)[0] == 201

    def all_sealed() -> bool:
        with db.connection_context():
            return trail.unsealed() == 0 and Event.select().count() >= 3

    eventually(all_sealed, timeout=10, what="the server sealed every entry")
    checked = fieldlink_audit(server, "verify")
    assert checked.returncode == 0, checked.stderr
    assert "entries sealed, whole; 0 newer not yet sealed" in checked.stdout

    today = date.today()
    period = ["--since", today.isoformat(), "--until", (today + timedelta(days=1)).isoformat()]
    exported = fieldlink_audit(server, "export", *period)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["kind"] for r in rows].count("incident_created") == 3
    assert all(r["actor"] and r["ts"] and len(r["digest"]) == 64 for r in rows)
    lines = fieldlink_audit(server, "export", *period, "--format", "json").stdout.splitlines()
    assert len(lines) == len(rows) and json.loads(lines[0])["seq"] == 1

    server.stop()  # what someone with the database file could do
    with db.connection_context():
        first, second = Event.select().order_by(Event.seq).limit(2)
        Event.update(actor="admin:nobody").where(Event.id == first.id).execute()
    changed = fieldlink_audit(server, "verify")
    assert changed.returncode == 1
    assert f"entry 1 (id {first.id}) was changed after its seal" in changed.stderr
    with db.connection_context():
        Event.update(actor=first.actor).where(Event.id == first.id).execute()
        Event.delete().where(Event.id == second.id).execute()
    removed = fieldlink_audit(server, "verify")
    assert removed.returncode == 1 and "entries 2 to 2 are missing" in removed.stderr
