"""The audit trail's seal: each entry's digest covers the one before it, so an entry taken out,
put in or changed after its seal shows at the first digest that no longer follows.

Entries are sealed in the order the sealer finds them (`seq` 1, 2, 3...), not by id: with
several instances on PostgreSQL an id can commit after a higher one. `link` and `breaks` are
pure, over plain data; server/store/audit.py reads and seals the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64  # what the first entry follows
SEALED_FIELDS = ("id", "ts", "actor", "kind", "incident_id", "unit_id", "order_id", "data")


def link(previous: str, entry: dict[str, Any]) -> str:
    """The digest of `entry` (its SEALED_FIELDS) following the digest `previous`."""
    content = json.dumps([entry[f] for f in SEALED_FIELDS], separators=(",", ":"))
    return hashlib.sha256(f"{previous}\n{content}".encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: int
    problem: str


def breaks(entries: Iterable[dict[str, Any]]) -> list[Break]:
    """Where sealed entries (in seq order, each with `seq` and `digest`) stop following each
    other: a gap in seq (an entry taken out), or a digest that does not follow (an entry
    changed, inserted or moved). Empty: the trail is whole."""
    found: list[Break] = []
    previous, expected_seq = GENESIS, 1
    for entry in entries:
        seq = entry["seq"]
        if seq != expected_seq:
            found.append(Break(seq, f"entries {expected_seq} to {seq - 1} are missing"))
        elif entry["digest"] != link(previous, entry):
            found.append(Break(seq, f"entry {seq} (id {entry['id']}) was changed after its seal"))
        previous, expected_seq = entry["digest"], seq + 1
    return found
