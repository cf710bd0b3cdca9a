"""The audit trail sealed and read back: `seal` chains the entries not yet sealed onto the
last one (server/rules/audit_chain.py), in the worker of the instance that runs the timers,
so there is one sealer at a time; `entries` reads them for `fieldlink audit`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# driver errors -> peewee's (its stubs leave the wrapper out)
from peewee import __exception_wrapper__ as translate_errors  # type: ignore[attr-defined]

from server.rules.audit_chain import GENESIS, SEALED_FIELDS, link
from server.store.models import Event, db

SEAL_BATCH = 2000  # entries sealed per turn (a turn every timer tick)


def entry(row: Event) -> dict[str, Any]:
    return {name: getattr(row, name) for name in (*SEALED_FIELDS, "seq", "digest")}


def seal(limit: int = SEAL_BATCH) -> int:
    """Seal the oldest entries not yet sealed; how many."""
    with db.atomic():
        last = (
            Event.select(Event.seq, Event.digest)
            .where(Event.seq.is_null(False))
            .order_by(Event.seq.desc())
            .first()
        )
        previous, seq = (last.digest, last.seq) if last else (GENESIS, 0)
        rows = list(Event.select().where(Event.seq.is_null()).order_by(Event.id).limit(limit))
        seals = []
        for row in rows:
            seq += 1
            previous = link(previous, entry(row))
            seals.append((seq, previous, row.id))
        # one prepared statement over the batch: a peewee query built per row cost more than
        # the database's own work
        table, mark = Event._meta.table_name, db.param
        sql = f"UPDATE {table} SET seq = {mark}, digest = {mark} WHERE id = {mark}"
        with translate_errors:
            db.cursor().executemany(sql, seals)
    return len(rows)


def sealed(page: int = 5000) -> Iterator[dict[str, Any]]:
    """Every sealed entry in seal order, read a page at a time."""
    after: int | None = 0
    while True:
        rows = list(Event.select().where(Event.seq > after).order_by(Event.seq).limit(page))
        yield from map(entry, rows)
        if len(rows) < page:
            return
        after = rows[-1].seq


def unsealed() -> int:
    return Event.select().where(Event.seq.is_null()).count()


def between(since: float, until: float) -> Iterator[dict[str, Any]]:
    """Entries of a period, oldest first, with their data as an object (for export)."""
    query = Event.select().where(Event.ts >= since, Event.ts < until).order_by(Event.ts, Event.id)
    for row in query.iterator():
        yield {**entry(row), "data": json.loads(row.data)}
