"""Every alarm answered, in process: where its units go, the time it counts at, repeated
presses, per-unit ids, the dispatcher's acknowledgement and the commanders' escalation.
The pure rules with plain asserts; the order desk on a temporary store with a clock the
test moves (no broker, no server process, no sleeping)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.button import PanicButton
from edge_agent.config import FiltersSettings, GpsdSettings, PanicSettings
from edge_agent.fixes import FixStage
from edge_agent.outbox import Outbox, Uplink
from server.orders import acks, alarms, incidents, timers, views
from server.rules.alarms import Place, alarm_ack_overdue, alarm_place, clock_offset, pressed_at
from server.rules.geo import PostPoint
from server.store import Alarm, Event, Incident, Order
from tests.order_book import T0, order_book
from wire import Channel, Topics, decode, encode

SCENE = (35.405, 116.587)
NEAR = (35.406, 116.588)  # ~140 m away
POST = PostPoint("P-hospital", "City Hospital", 1, 35.4101, 116.5902)


def fix(ts: float, at: tuple[float, float] = SCENE) -> dict[str, Any]:
    return {"ts": ts, "lat": at[0], "lon": at[1]}


# -- where the units go ---------------------------------------------------------------------
def test_a_fresh_fix_places_the_alarm_the_alarms_own_first() -> None:
    assert alarm_place(fix(T0 - 5), fix(T0 - 1, NEAR), POST, T0, 60) == Place(
        *SCENE, "alarm_fix", 5
    )
    assert alarm_place(None, fix(T0 - 1, NEAR), POST, T0, 60) == Place(*NEAR, "unit_fix", 1)
    assert alarm_place(fix(T0 - 600), fix(T0 - 2, NEAR), None, T0, 60).source == "unit_fix"


def test_without_a_fresh_fix_a_post_is_where_it_stands_else_the_last_known_place() -> None:
    assert alarm_place(None, None, POST, T0, 60) == Place(POST.lat, POST.lon, "post")
    assert alarm_place(fix(T0 - 600), None, POST, T0, 60).source == "post"
    old = alarm_place(fix(T0 - 600), fix(T0 - 300, NEAR), None, T0, 60)
    assert old == Place(*NEAR, "last_known", 300)
    nothing = alarm_place(None, None, None, T0, 60)
    assert not nothing.known and nothing.source is None


# -- the time it counts at ------------------------------------------------------------------
def test_the_device_time_counts_when_plausible_and_the_reason_is_kept_when_not() -> None:
    pressed = pressed_at(T0 - 20, T0, not_before=T0 - 100)  # held 20 s in the outbox
    assert (pressed.ts, pressed.source, pressed.distrust) == (T0 - 20, "device", None)
    ahead = pressed_at(T0 + 45, T0, not_before=T0 - 100)
    assert ahead.ts == T0 and ahead.source == "server" and "45 s ahead" in ahead.distrust
    before = pressed_at(T0 - 200, T0, not_before=T0 - 100)
    assert before.ts == T0 and "100 s before it could be" in before.distrust
    assert pressed_at(T0 + 1, T0, not_before=0).ts == T0  # a second ahead: the receive time
    unsaid = pressed_at(None, T0, not_before=T0 + 0.5)  # no device time: never before the last
    assert (unsaid.ts, unsaid.source, unsaid.distrust) == (T0 + 0.5, "server", None)
    assert before.public() == {
        "device_ts": T0 - 200,
        "received_at": T0,
        "time_source": "server",
        "why": before.distrust,
    }


def test_a_clock_offset_is_the_least_lateness_and_an_unheard_alarm_is_overdue_once() -> None:
    assert clock_offset([12.4, 10.1, 30.0]) == 10.1 and clock_offset([]) is None
    assert alarm_ack_overdue(T0, None, None, T0 + 30, 30)
    assert not alarm_ack_overdue(T0, T0 + 5, None, T0 + 60, 30)  # heard
    assert not alarm_ack_overdue(T0, None, T0 + 30, T0 + 60, 30)  # already escalated
    assert not alarm_ack_overdue(T0, None, None, T0 + 29, 30)


# -- the order desk ---------------------------------------------------------------------------
@pytest.fixture
def desk(tmp_path):
    return order_book(tmp_path, alarm_ack_s=30.0)


def alarm(alarm_id: str = "a1", ts: float = T0, **extra: Any) -> dict[str, Any]:
    return {"alarm_id": alarm_id, "ts": ts, "kind": "panic", **extra}


def test_a_panic_with_an_invalid_fix_is_kept_and_placed_by_the_units_own_fix(desk) -> None:
    desk.add_unit("car-1", at=NEAR)
    desk.add_unit("car-2", at=SCENE)
    payload = encode(Channel.ALARM, alarm()).replace(b"}", b',"fix":{"ts":1,"lat":95,"lon":1}}')
    decoded = decode(Channel.ALARM, payload)
    dropped = decoded.pop("dropped")
    incident = alarms.on_alarm(desk.book, "car-1", decoded, T0, dropped)
    assert (incident.lat, incident.lon, incident.location_source) == (*NEAR, "unit_fix")
    assert Order.select().where(Order.incident == incident).count() >= 1
    assert "lat" in Alarm.get().dropped


def test_a_kiosk_that_never_had_a_fix_sends_for_help_from_its_surveyed_post(desk) -> None:
    desk.add_post(POST.post_id, POST.lat, POST.lon)
    desk.add_unit("kiosk-1", "guard_post", home_post=POST.post_id)
    desk.add_unit("car-1", at=(POST.lat + 0.002, POST.lon))
    incident = alarms.on_alarm(desk.book, "kiosk-1", alarm(), T0)
    assert (incident.lat, incident.lon, incident.location_source) == (POST.lat, POST.lon, "post")
    [order] = Order.select().where(Order.incident == incident)
    assert order.unit_id == "car-1"
    assert desk.notes.of("agent", "car-1")[0]["location"]["lat"] == POST.lat


def test_a_panic_s_summary_goes_as_a_code_each_screen_words_until_a_dispatcher_rewrites_it(
    desk,
) -> None:
    desk.add_unit("kiosk-1", "guard_post", at=SCENE)
    desk.add_unit("car-1", at=NEAR)
    incident = alarms.on_alarm(desk.book, "kiosk-1", alarm(), T0)
    said = {"summary_code": "panic_at", "summary_params": {"unit": "kiosk-1"}}
    assert views.incident_public(incident).items() >= said.items()
    [order] = desk.notes.of("agent", "car-1")
    assert order["summary"] == "Panic button at kiosk-1" and order.items() >= said.items()

    same = {"priority": 2, "summary": "Panic button at kiosk-1"}  # the edit form's
    incidents.update(desk.book, incident.id, same, "dispatcher")
    assert views.incident_public(Incident.get_by_id(incident.id)).items() >= said.items()
    incidents.update(desk.book, incident.id, {"summary": "Fight at the gate"}, "dispatcher")
    rewritten = views.incident_public(Incident.get_by_id(incident.id))
    assert rewritten["summary"] == "Fight at the gate" and "summary_code" not in rewritten
    assert "summary_code" not in desk.notes.of("agent", "car-1")[-1]


def test_with_no_place_at_all_the_console_is_told_and_placing_it_sends_the_plan(desk) -> None:
    desk.add_unit("car-9")  # never had a fix, at no post
    desk.add_unit("car-1", at=SCENE)
    desk.add_unit("car-2", at=NEAR)
    incident = alarms.on_alarm(desk.book, "car-9", alarm(), T0)
    assert incident.lat is None and incident.wanted is not None
    [alert] = [a for a in desk.notes.of("console", "alert") if a["kind"] == "no_location"]
    assert "place the incident on the map" in alert["message"]
    assert Order.select().count() == 0
    timers.tick(desk.book)  # the timer does not send to nowhere
    assert Order.select().count() == 0

    placed = incidents.update(
        desk.book, incident.id, {"location": {"lat": SCENE[0], "lon": SCENE[1]}}, "console:ann"
    )
    assert placed.location_source == "dispatcher"
    sent = {o.unit_id for o in Order.select().where(Order.incident == incident.id)}
    assert sent == {"car-1", "car-2"}  # the plan's two cars for a panic
    assert Incident.get_by_id(incident.id).wanted is None


def test_a_call_with_no_place_takes_its_units_next_fix(desk) -> None:
    desk.add_unit("car-9")
    desk.add_unit("car-1", at=SCENE)
    incident = alarms.on_alarm(desk.book, "car-9", alarm(), T0)
    assert incident.lat is None and "car-9" in desk.book.unplaced_calls
    alarms.place_call_by_fix(desk.book, "car-9", fix(T0 + 1, NEAR))
    placed = Incident.get_by_id(incident.id)
    assert (placed.lat, placed.lon, placed.location_source) == (*NEAR, "unit_fix")
    assert [o.unit_id for o in Order.select()] == ["car-1"]
    assert "car-9" not in desk.book.unplaced_calls


def test_alarm_ids_are_the_units_own_a_redelivery_is_nothing_new(desk) -> None:
    desk.add_unit("kiosk-1", "guard_post", at=SCENE)
    desk.add_unit("kiosk-2", "guard_post", at=NEAR)
    first = alarms.on_alarm(desk.book, "kiosk-1", alarm("same-id"), T0)
    second = alarms.on_alarm(desk.book, "kiosk-2", alarm("same-id"), T0)
    assert first.id != second.id and Incident.select().count() == 2
    again = alarms.on_alarm(desk.book, "kiosk-1", alarm("same-id"), T0 + 3)
    assert again.id == first.id and Alarm.select().count() == 2


def test_presses_while_the_call_is_open_join_it_counted_and_shown(desk) -> None:
    desk.add_unit("kiosk-1", "guard_post", at=SCENE)
    desk.add_unit("car-1", at=NEAR)
    calls = {
        alarms.on_alarm(desk.book, "kiosk-1", alarm(f"a{n}", T0 + n), T0 + n).id for n in range(100)
    }
    assert len(calls) == 1 and Incident.select().count() == 1
    incident = Incident.get()
    assert incident.presses == 100 and Alarm.select().count() == 100
    kinds = [e.kind for e in Event.select().where(Event.incident_id == incident.id)]
    assert kinds.count("alarm") == 1 and kinds.count("alarm_repeated") == 99
    assert desk.notes.of("console", "alarm")[-1]["presses"] == 100
    assert desk.notes.of("reporter", "kiosk-1")[-1]["presses"] == 100

    incidents.resolve(desk.book, incident.id, "false alarm", "console:ann")
    later = alarms.on_alarm(desk.book, "kiosk-1", alarm("after-close"), T0 + 500)
    assert later.id != incident.id and later.presses == 1  # a new call once that one is over


def test_an_alarm_rings_until_acknowledged_then_everywhere_falls_silent(desk) -> None:
    desk.add_unit("kiosk-1", "guard_post", at=SCENE)
    alarms.on_alarm(desk.book, "kiosk-1", alarm(), T0)
    [ringing] = views.unacknowledged_alarms()
    desk.clock.advance(12)
    [done] = alarms.acknowledge(desk.book, [ringing["id"]], "console:ann")
    assert done["acknowledged_by"] == "console:ann" and done["acknowledged_at"] == T0 + 12
    assert views.unacknowledged_alarms() == []
    [silenced] = desk.notes.of("console", "alarms_acknowledged")
    assert silenced["by"] == "console:ann" and silenced["alarms"][0]["id"] == ringing["id"]
    event = Event.get(Event.kind == "alarm_acknowledged")
    assert event.actor == "console:ann" and '"waited_s": 12.0' in event.data
    assert alarms.acknowledge(desk.book, [ringing["id"]], "console:bob") == []  # already


def test_an_alarm_nobody_acknowledges_in_time_goes_to_the_commanders_once(desk) -> None:
    desk.add_unit("kiosk-1", "guard_post", at=SCENE)
    alarms.on_alarm(desk.book, "kiosk-1", alarm(), T0)
    desk.clock.advance(29)
    timers.tick(desk.book)
    assert not [a for a in desk.notes.of("console", "alert") if a["kind"] == "alarm_unacknowledged"]
    desk.clock.advance(2)
    timers.tick(desk.book)
    timers.tick(desk.book)
    [alert] = [a for a in desk.notes.of("console", "alert") if a["kind"] == "alarm_unacknowledged"]
    assert alert["to"] == "commanders" and "not acknowledged for 31 s" in alert["message"]
    assert views.unacknowledged_alarms()[0]["escalated_at"] == T0 + 31


def test_a_press_held_offline_counts_at_its_own_time_and_an_implausible_one_does_not(desk) -> None:
    desk.add_unit("kiosk-1", "guard_post", at=SCENE)
    desk.add_unit("car-1", at=NEAR)
    incident = alarms.on_alarm(desk.book, "kiosk-1", alarm(ts=T0 - 20), T0)
    assert incident.created_at == T0 - 20
    [order] = Order.select()
    desk.clock.advance(30)
    answer = acks.on_ack(
        desk.book,
        "car-1",
        order.id,
        "accepted",
        "agent:car-1",
        device_ts=T0 + 10,
        received_at=T0 + 30,
    )
    assert answer["accepted_at"] == T0 + 10
    desk.clock.advance(10)
    late = acks.on_ack(
        desk.book,
        "car-1",
        order.id,
        "en_route",
        "agent:car-1",
        device_ts=T0 + 500,
        received_at=T0 + 40,
    )
    assert late["en_route_at"] == T0 + 40
    event = Event.get(Event.kind == "order_en_route")
    assert '"time_source": "server"' in event.data and "ahead" in event.data


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(["ts", "lat", "lon", "speed", "heading", "acc", "alt", "mode", "x"]),
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-(10**6), 10**6),
            st.text(max_size=3),
            st.none(),
        ),
        max_size=9,
    )
)
def test_whatever_fix_travels_with_a_panic_the_panic_becomes_an_incident(
    tmp_path_factory, any_fix
) -> None:
    desk = order_book(tmp_path_factory.mktemp("desk"))
    desk.add_unit("car-1", at=SCENE)
    desk.add_unit("car-2", at=NEAR)
    payload = encode(Channel.ALARM, alarm()).replace(b"}", b',"fix":' + _json(any_fix) + b"}")
    decoded = decode(Channel.ALARM, payload)
    incident = alarms.on_alarm(desk.book, "car-1", decoded, T0, decoded.pop("dropped", None))
    assert incident is not None and incident.lat is not None
    assert Order.select().where(Order.incident == incident).count() >= 1


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.fixed_dictionaries(
        {"ts": st.floats(T0 - 5, T0), "lat": st.floats(allow_nan=True), "lon": st.floats()},
        optional={
            "speed": st.floats(-1, 100),
            "heading": st.floats(-10, 400),
            "acc": st.floats(-1, 1e4),
            "alt": st.floats(allow_nan=True, allow_infinity=True),
            "mode": st.integers(0, 3),
        },
    )
)
def test_any_fix_the_receiver_gives_a_pressed_panic_is_queued_and_becomes_an_incident(
    tmp_path_factory, receiver_fix
) -> None:
    """The agent's filters and the wire are one rule: whatever fix gpsd hands over, the
    panic that carries the last good one is queued, decodes on the server, and is answered."""
    workdir = tmp_path_factory.mktemp("agent")
    stage = FixStage(FiltersSettings(max_future_s=0), GpsdSettings(), clock=lambda: T0)
    stage.offer({**receiver_fix, "mode": receiver_fix.get("mode", 3)})
    outbox = Outbox(workdir / "outbox.db")
    Device.pin_factory = MockFactory()
    try:
        button = PanicButton(
            PanicSettings(pin=17), Uplink(outbox, "car-1", Topics()), lambda: stage.last_good
        )
        button.fire()
        button.close()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = None
    [row] = outbox.peek(10)
    outbox.close()
    desk = order_book(workdir)
    desk.add_unit("car-1")
    desk.add_unit("car-2", at=NEAR)
    decoded = decode(Channel.ALARM, row.payload)
    assert "dropped" not in decoded  # a fix the filters kept always travels
    incident = alarms.on_alarm(desk.book, "car-1", decoded, T0)
    answered = (
        incident.lat is not None and Order.select().where(Order.incident == incident).exists()
    )
    alerted = [a for a in desk.notes.of("console", "alert") if a["kind"] == "no_location"]
    assert answered or (stage.last_good is None and alerted)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()
