"""Socket.IO /terminal: golden samples of every event a screen sends and is sent."""

from __future__ import annotations

import json

import pytest

from wire import WireError
from wire.screens import (
    AnswerSchema,
    ScreenEvent,
    load_screen_panic,
    load_screen_shift,
    load_terminal_ack,
    validate_pushed,
)

SENT_BY_SCREENS = {
    ScreenEvent.ACK: b'{"order_id":"o-1","status":"accepted","reason":"","ts":1795430010.0}',
    ScreenEvent.PANIC: b'{"alarm_id":"k3-1795430001","ts":1795430001.5,'
    b'"fix":{"ts":1795430000.0,"lat":35.405,"lon":116.587}}',
}
PUSHED_TO_SCREENS = {
    ScreenEvent.ORDER: b'{"order_id":"o-1","incident_id":"i-1","ts":1795430002.0,'
    b'"kind":"dispatch","priority":1,"category":"urgent","summary":"Panic at kiosk-03",'
    b'"location":{"lat":35.41,"lon":116.59,"address":"Guanghe Rd 12"},"unit_id":"car-07",'
    b'"state":"sent","distance_m":1240.0,"eta_s":158.0}',
    ScreenEvent.CALL: b'{"ts":1795430004.0,"incident_id":"i-1","state":"dispatched",'
    b'"presses":2,"units":[{"unit_id":"car-07","name":"Car 7","state":"en_route",'
    b'"eta_s":140.0}],"created_at":1795430001.6,"dispatched_at":1795430002.0,'
    b'"on_scene_at":null}',
}
ANSWERS = [b'{"ok":true}', b'{"ok":false,"error":"order o-9 is not yours","retry":false}']


def test_an_ack_sample_loads_as_sent() -> None:
    sample = json.loads(SENT_BY_SCREENS[ScreenEvent.ACK])
    assert load_terminal_ack(sample) == sample


def test_a_panic_sample_is_a_panic_alarm_with_its_fix() -> None:
    alarm = load_screen_panic(json.loads(SENT_BY_SCREENS[ScreenEvent.PANIC]), "fallback")
    assert alarm["kind"] == "panic" and alarm["alarm_id"] == "k3-1795430001"
    assert alarm["fix"]["lat"] == 35.405 and "dropped" not in alarm


@pytest.mark.parametrize("event", list(PUSHED_TO_SCREENS))
def test_pushed_samples_load_as_sent(event: ScreenEvent) -> None:
    sample = json.loads(PUSHED_TO_SCREENS[event])
    assert validate_pushed(event, sample) == sample


def test_a_pushed_order_is_refused_without_what_every_screen_needs() -> None:
    order = json.loads(PUSHED_TO_SCREENS[ScreenEvent.ORDER])
    del order["location"]
    with pytest.raises(WireError, match="location"):
        validate_pushed(ScreenEvent.ORDER, order)


@pytest.mark.parametrize("answer", ANSWERS)
def test_answers_have_one_shape(answer: bytes) -> None:
    assert AnswerSchema().loads(answer) == json.loads(answer)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (None, "order_id"),
        ({"order_id": "o-1", "status": "received"}, "status"),  # the delivery callback's
        ({"order_id": "o-1", "status": "accepted", "ts": float("nan")}, "ts"),
        ({"order_id": "", "status": "accepted"}, "order_id"),
    ],
)
def test_an_ack_a_screen_cannot_send_is_refused_with_what_is_wrong(data, says: str) -> None:
    with pytest.raises(WireError, match=says):
        load_terminal_ack(data)


def test_a_panic_is_never_refused_for_what_travels_with_it() -> None:
    for data in (None, [], "help", {"fix": {"lat": 99}}, {"kind": "fire"}):
        alarm = load_screen_panic(data, "made-by-server")
        assert alarm["kind"] == "panic" and alarm["alarm_id"] == "made-by-server"
    assert load_screen_panic({"kind": "test"}, "x")["kind"] == "test"


SHIFT_SAMPLE = b'{"crew":[{"id":"A1023","name":"Li Wei"},{"id":"B2077","name":"Wang Fang"}]}'


def test_a_shift_sample_loads_as_sent_and_no_one_signs_off() -> None:
    assert load_screen_shift(json.loads(SHIFT_SAMPLE)) == json.loads(SHIFT_SAMPLE)["crew"]
    assert load_screen_shift({"crew": []}) == []
    assert load_screen_shift({"crew": [{"id": "A1", "name": "  Li Wei "}]})[0]["name"] == "Li Wei"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (None, "crew"),
        ({"crew": "A1"}, "crew"),
        ({"crew": [{"id": "A1", "name": " "}]}, "name"),
        ({"crew": [{"id": "A 1", "name": "Li"}]}, "id"),
        ({"crew": [{"id": "A1", "name": "Li"}, {"id": "A1", "name": "Lee"}]}, "once"),
        ({"crew": [{"id": f"A{i}", "name": "Li"} for i in range(4)]}, "maximum length 3"),
        ({"crew": [{"id": "A1", "name": "Li\x00"}]}, "name"),
    ],
)
def test_a_crew_a_screen_cannot_sign_on_is_refused_with_what_is_wrong(data, says: str) -> None:
    with pytest.raises(WireError, match=says):
        load_screen_shift(data)
