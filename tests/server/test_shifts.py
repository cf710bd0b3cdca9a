"""A crew signs on to its unit: the orders sent after, their acks and the timeline say who,
the consoles see the crew, a restart keeps it, and the KPIs read per officer."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from server.orders import acks, dispatching, incidents, shifts
from server.orders.context import OrderRefused
from server.rules.kpis import kpis_by
from server.state.live_state import LiveState
from server.state.loading import load_live_state
from server.store import Event, Shift, incident_records, shift_records
from tests.order_book import T0, order_book

LI = {"id": "A1023", "name": "Li Wei"}
WANG = {"id": "B2077", "name": "Wang Fang"}
SCENE = {"lat": 35.405, "lon": 116.587}


@pytest.fixture
def desk(tmp_path):
    desk = order_book(tmp_path)
    desk.add_unit("car-1", at=(35.406, 116.588))
    desk.add_unit("car-2", at=(35.407, 116.589))
    return desk


def events(kind: str) -> list[dict]:
    return [json.loads(e.data) for e in Event.select().where(Event.kind == kind).order_by(Event.id)]


def test_orders_acks_and_the_timeline_say_who_was_on_the_unit(desk) -> None:
    shifts.sign_on(desk.book, "car-1", [LI, WANG], "terminal:car-1")
    assert desk.live.get("car-1").public()["crew"] == [LI, WANG]
    assert [u["crew"] for u in desk.live.take_changed() if u["id"] == "car-1"] == [[LI, WANG]]
    incident = incidents.create(
        desk.book, {"category": "dispute", "priority": 2, "location": SCENE}, "console:ann"
    )
    [order] = dispatching.dispatch_units(desk.book, incident.id, ["car-1"], "console:ann")
    assert desk.notes.of("console", "order")[-1]["crew"] == [LI, WANG]
    acks.on_ack(desk.book, "car-1", order.id, "accepted", "terminal:car-1")
    assert events("shift_started") == [{"crew": [LI, WANG], "before": None}]
    assert events("order_sent")[0]["crew"] == [LI, WANG]
    assert events("order_accepted")[0]["crew"] == [LI, WANG]


def test_a_new_crew_takes_over_and_signing_off_ends_the_shift(desk) -> None:
    shifts.sign_on(desk.book, "car-1", [LI], "terminal:car-1")
    desk.clock.advance(3600)
    shifts.sign_on(desk.book, "car-1", [WANG], "terminal:car-1")
    desk.clock.advance(3600)
    assert shifts.sign_on(desk.book, "car-1", [], "console:ann") == []
    rows = list(Shift.select().order_by(Shift.id))
    assert [(json.loads(r.crew), r.started_at, r.ended_at) for r in rows] == [
        ([LI], T0, T0 + 3600),
        ([WANG], T0 + 3600, T0 + 7200),
    ]
    assert rows[1].ended_by == "console:ann" and desk.live.get("car-1").crew == []
    with pytest.raises(OrderRefused) as no_shift:
        shifts.sign_off(desk.book, "car-1", "terminal:car-1")
    assert no_shift.value.refusal.code == "no_shift"
    assert [r.crew for r in shift_records(T0, T0 + 7200)] == [
        (("A1023", "Li Wei"),),
        (("B2077", "Wang Fang"),),
    ]


def test_an_officer_is_on_one_unit_at_a_time(desk) -> None:
    shifts.sign_on(desk.book, "car-1", [LI], "terminal:car-1")
    with pytest.raises(OrderRefused) as clash:
        shifts.sign_on(desk.book, "car-2", [WANG, LI], "terminal:car-2")
    assert clash.value.refusal.public()["params"] == {"officer": "A1023", "unit": "car-1"}
    assert desk.live.get("car-2").crew == [] and Shift.select().count() == 1
    with pytest.raises(OrderRefused):
        shifts.sign_on(desk.book, "car-9", [WANG], "terminal:car-9")


def test_a_restart_keeps_the_crew_on_shift(desk) -> None:
    shifts.sign_on(desk.book, "car-2", [WANG], "terminal:car-2")
    live = LiveState()
    load_live_state(live)
    assert live.get("car-2").crew == [WANG] and live.get("car-1").crew == []


def test_the_kpis_read_per_officer(desk) -> None:
    shifts.sign_on(desk.book, "car-1", [LI, WANG], "terminal:car-1")
    shifts.sign_on(desk.book, "car-2", [{"id": "C3", "name": "Zhao Lei"}], "terminal:car-2")
    for unit_id in ("car-1", "car-2"):
        incident = incidents.create(
            desk.book, {"category": "dispute", "priority": 2, "location": SCENE}, "console:ann"
        )
        [order] = dispatching.dispatch_units(desk.book, incident.id, [unit_id], "console:ann")
        desk.clock.advance(30)
        acks.on_ack(desk.book, unit_id, order.id, "accepted", f"terminal:{unit_id}")
    figures = kpis_by(incident_records(T0 - 1, T0 + 3600), "officer", ZoneInfo("UTC"))
    assert {k: g["incidents"] for k, g in figures["groups"].items()} == {
        "A1023": 1,
        "B2077": 1,
        "C3": 1,
    }
    assert figures["groups"]["C3"]["dispatch_to_acknowledge"]["median_s"] == 30.0
    assert figures["officers"]["B2077"] == "Wang Fang"
