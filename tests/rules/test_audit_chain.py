"""The audit trail's seal, pure: a changed, missing or inserted entry breaks the chain there."""

from __future__ import annotations

import dataclasses

from server.rules.audit_chain import GENESIS, breaks, link


def sealed_trail(count: int) -> list[dict]:
    trail, previous = [], GENESIS
    for n in range(1, count + 1):
        entry = {
            "id": n + 100,  # ids need not be the seal's order
            "ts": 1_700_000_000.0 + n,
            "actor": "dispatcher:li",
            "kind": "note",
            "incident_id": "inc-1",
            "unit_id": None,
            "order_id": None,
            "data": '{"text": "n"}',
            "seq": n,
        }
        previous = entry["digest"] = link(previous, entry)
        trail.append(entry)
    return trail


def test_a_whole_trail_has_no_break():
    assert breaks(sealed_trail(5)) == []
    assert breaks([]) == []


def test_a_changed_entry_breaks_at_itself():
    trail = sealed_trail(5)
    trail[2]["data"] = '{"text": "something else"}'
    [found] = breaks(trail)
    assert found.seq == 3 and "changed after its seal" in found.problem


def test_a_missing_entry_is_named_by_its_place():
    trail = sealed_trail(5)
    del trail[1]
    assert [dataclasses.astuple(b) for b in breaks(trail)] == [(3, "entries 2 to 2 are missing")]


def test_an_entry_put_in_with_a_seq_of_its_own_breaks_the_one_after_it():
    trail = sealed_trail(4)
    forged = {**trail[1], "id": 999, "seq": 3, "data": '{"text": "forged"}'}
    forged["digest"] = link(trail[1]["digest"], forged)  # the forger can chain it in...
    tail = [{**e, "seq": e["seq"] + 1} for e in trail[2:]]
    # ...but the entry after it was sealed over the original one
    assert [b.seq for b in breaks([*trail[:2], forged, *tail])] == [4]
