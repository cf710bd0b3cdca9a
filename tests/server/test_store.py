"""The store's fast paths on the order path: statements built once, updates of what changed.

Runs on SQLite, and on PostgreSQL in the suite's second pass (the two mark values apart).
"""

from __future__ import annotations

import pytest

from harness.stores import database_for
from server.store import Incident, Order, Prepared, Unit, by_id, db, open_database


@pytest.fixture
def store(tmp_path):
    open_database(database_for(tmp_path))
    with db.connection_context():
        Unit.create(id="car-1", kind="patrol_car", terminal_token_hash="t")
        incident = Incident.create(
            id="i1", category="help", priority=2, lat=31.2, lon=121.4, created_at=1.0
        )
        Order.create(id="o1", incident=incident, unit="car-1", sent_at=2.0, kinds="patrol_car")
        yield
    db.close()


def test_by_id_reads_what_peewee_reads_and_none_for_no_such_id(store) -> None:
    for model, key in ((Order, "o1"), (Incident, "i1")):
        fast, built = by_id(model, key), model.get_by_id(key)
        assert fast.__data__ == built.__data__ and not fast.dirty_fields
    assert by_id(Order, "o1").incident_id == "i1"
    assert by_id(Incident, "nope") is None


def test_a_save_writes_only_the_fields_changed(store) -> None:
    mine, theirs = by_id(Incident, "i1"), by_id(Incident, "i1")
    theirs.summary = "caller says two men"  # another instance's change
    theirs.save()
    mine.state = "dispatched"
    mine.save()
    now = by_id(Incident, "i1")
    assert (now.state, now.summary) == ("dispatched", "caller says two men")
    assert mine.save() is False  # nothing changed: no statement


def test_a_prepared_statement_runs_again_with_new_values(store) -> None:
    states = Prepared(
        lambda unit_id, *states: Order.select(Order.state).where(
            (Order.unit == unit_id) & Order.state.in_(states)
        )
    )
    set_state = Prepared(
        lambda state, order_id: Order.update(state=state).where(Order.id == order_id)
    )
    assert states.rows("car-1", "sent", "accepted") == [("sent",)]
    assert set_state.run("accepted", "o1") == 1
    assert set_state.run("accepted", "no-such-order") == 0
    assert states.rows("car-1", "sent", "accepted") == [("accepted",)]
    assert states.rows("car-2", "sent", "accepted") == []


def test_a_statement_that_takes_its_values_out_of_order_is_refused(store) -> None:
    swapped = Prepared(
        lambda state, order_id: Order.update(state=order_id).where(Order.id == state)
    )
    with pytest.raises(ValueError, match="out of order"):
        swapped.run("accepted", "o1")
