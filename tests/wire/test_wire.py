"""Wire protocol v1: golden samples of every message, topics, and what is refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from mqtt_link import BrokerAddress
from wire import MAX_PAYLOAD_BYTES, Channel, Topics, WireError, decode, encode, unwritable
from wire.messages import FixSchema, compile_flat, fix_problem, nesting_depth
from wire.topics import TopicError

GOLDEN = {
    Channel.POSITION: b'{"ts":1795430000.0,"lat":35.405,"lon":116.587,"speed":9.5,'
    b'"heading":270.0,"acc":4.0,"alt":41.0,"mode":3}',
    Channel.ALARM: b'{"alarm_id":"a1b2c3","ts":1795430001.5,"kind":"panic",'
    b'"fix":{"ts":1795430000.0,"lat":35.405,"lon":116.587}}',
    Channel.ACK: b'{"order_id":"o-1","ts":1795430010.0,"status":"accepted"}',
    Channel.STATE: b'{"online":true,"ts":1795430000.0,"kind":"patrol_car","version":"0.1.0"}',
    Channel.HEALTH: b'{"ts":1795430000.0,"fix_mode":3,"sats":9,"outbox":0,"uptime_s":3600.0,'
    b'"dropped":0,"cpu_temp_c":51.2,"link":"up"}',
    Channel.ORDERS: b'{"order_id":"o-1","incident_id":"i-1","ts":1795430002.0,"kind":"dispatch",'
    b'"priority":1,"category":"urgent","summary":"Panic at kiosk-03",'
    b'"location":{"lat":35.41,"lon":116.59,"address":"Guanghe Rd 12"},"unit_id":"car-07"}',
    Channel.RECEIPT: b'{"ts":1795430003.0,"alarms":["a1b2c3"],'
    b'"acks":[{"order_id":"o-1","status":"accepted"}],"positions":1795430000.0}',
    Channel.CALL: b'{"ts":1795430004.0,"incident_id":"i-1","state":"dispatched","presses":2,'
    b'"units":[{"unit_id":"car-07","name":"Car 7","state":"en_route","eta_s":140.0}]}',
}


@pytest.mark.parametrize("channel", list(GOLDEN))
def test_golden_samples_round_trip(channel: Channel) -> None:
    decoded = decode(channel, GOLDEN[channel])
    message = decoded[0] if channel is Channel.POSITION else decoded
    assert json.loads(encode(channel, message)) == json.loads(GOLDEN[channel])


def test_batch_decodes_to_a_list_of_fixes() -> None:
    fixes = decode(
        Channel.POSITION, b'{"batch":[{"ts":1,"lat":1,"lon":2},{"ts":2,"lat":1,"lon":2}]}'
    )
    assert [f["ts"] for f in fixes] == [1.0, 2.0]


def test_unknown_fields_are_dropped_not_fatal() -> None:
    fix = decode(Channel.POSITION, b'{"ts":1,"lat":1,"lon":2,"satellites_seen":14}')
    assert fix == [{"ts": 1.0, "lat": 1.0, "lon": 2.0}]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"not json", "not JSON"),
        (b'{"ts":1,"lat":91,"lon":2}', "lat"),
        (b'{"ts":1,"lat":NaN,"lon":2}', "NaN"),
        (b'{"ts":1,"lat":1,"lon":Infinity}', "Infinity"),
        (b'{"ts":"yesterday","lat":1,"lon":2}', "ts"),
        # a number in quotes, or true for 1, is a sender's bug, not a number
        (b'{"ts":"1700000000","lat":1,"lon":2}', "ts"),
        (b'{"ts":1,"lat":"52.1","lon":2}', "lat"),
        (b'{"ts":1,"lat":1,"lon":2,"mode":"3"}', "mode"),
        (b'{"ts":1,"lat":1,"lon":2,"mode":true}', "mode"),
        (b'{"ts":1,"lat":1,"lon":2,"mode":2.5}', "mode"),
        (b'{"ts":true,"lat":1,"lon":2}', "ts"),
        (b'{"lat":1,"lon":2}', "ts"),
        (b"[1,2,3]", "JSON object"),
        (b'{"batch":[]}', "batch"),
        (b"\xff\xfe", "not JSON"),
        (b'{"ts":1,"lat":1,"lon":2,"pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}', "limit"),
    ],
)
def test_bad_positions_are_refused_with_a_reason(payload: bytes, says: str) -> None:
    with pytest.raises(WireError, match=says):
        decode(Channel.POSITION, payload)


@pytest.mark.parametrize(
    ("channel", "payload"),
    [
        (Channel.ACK, b'{"order_id":"o","ts":1,"status":"maybe"}'),
        (Channel.STATE, b'{"online":"yes","ts":1}'),
        # ids a reader cannot tell apart: a right-to-left mark, a zero-width space, a space
        (Channel.ACK, '{"order_id":"o\u200f1","ts":1,"status":"accepted"}'.encode()),
        (Channel.ACK, '{"order_id":"o\u200b1","ts":1,"status":"accepted"}'.encode()),
        (Channel.ACK, b'{"order_id":"o 1","ts":1,"status":"accepted"}'),
        (
            Channel.ORDERS,
            b'{"order_id":"o","incident_id":"i","ts":1,"kind":"dispatch",'
            b'"priority":9,"category":"urgent","location":{"lat":1,"lon":2}}',
        ),
    ],
)
def test_bad_messages_are_refused(channel: Channel, payload: bytes) -> None:
    with pytest.raises(WireError):
        decode(channel, payload)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("li\x00", "control character U+0000 at position 2"),
        ("\x1b[31m", "control character U+001B at position 0"),
        ("\x7f", "control character U+007F at position 0"),
        ("half \ud800", "control character U+D800 at position 5"),
        ("北京路 12号\n二楼\t右", None),
    ],
)
def test_text_keeps_what_people_type_and_refuses_what_no_store_keeps(
    text: str, problem: str | None
) -> None:
    assert unwritable(text) == problem
    payload = json.dumps({"order_id": "o", "ts": 1, "status": "declined", "reason": text})
    if problem:
        with pytest.raises(WireError, match=re.escape(problem)):
            decode(Channel.ACK, payload.encode())
    else:
        assert decode(Channel.ACK, payload.encode())["reason"] == text


def test_encode_refuses_an_invalid_outgoing_message() -> None:
    with pytest.raises(WireError, match="lat"):
        encode(Channel.POSITION, {"ts": 1, "lat": 200, "lon": 0})


def test_topics_build_and_parse() -> None:
    topics = Topics("fieldlink/v1")
    topic = topics.unit("car-07", Channel.ALARM)
    assert topic == "fieldlink/v1/units/car-07/alarm"
    assert topics.parse(topic) == ("car-07", Channel.ALARM)
    assert "fieldlink/v1/units/+/orders" not in topics.upstream_filters()
    assert "fieldlink/v1/units/+/position" in topics.upstream_filters()


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/units/car/position",
        "fieldlink/v1/units/car/position/extra",
        "fieldlink/v1/units/car/teleport",
        "fieldlink/v1/units/bad id/position",
        "fieldlink/v1/units/" + "x" * 65 + "/position",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        Topics().parse(topic)


def test_broker_urls() -> None:
    plain = BrokerAddress.parse("mqtt://127.0.0.1")
    assert (plain.host, plain.port, plain.tls) == ("127.0.0.1", 1883, False)
    secure = BrokerAddress.parse("mqtts://car-07:s%40cret@broker.example:8884")
    assert (secure.port, secure.tls, secure.username, secure.password) == (
        8884,
        True,
        "car-07",
        "s@cret",
    )
    with pytest.raises(ValueError, match="mqtt://"):
        BrokerAddress.parse("http://broker")


_VALUES = st.one_of(
    st.integers(-400, 400),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-400, max_value=400),
    st.sampled_from([0, 0.0, -90, 90, 180, -180, 360, 3, 4, True, False, None, "1.5", "x"]),
)


@given(st.dictionaries(st.sampled_from([*FixSchema().fields, "extra"]), _VALUES, max_size=9))
def test_the_quick_fix_check_never_disagrees_with_the_schema(data: dict) -> None:
    quick = compile_flat(FixSchema())(data)
    try:
        full = FixSchema().load(data)
    except ValidationError:
        full = None
    if quick is not None:
        assert quick == full


def test_the_quick_fix_check_takes_a_plain_fix() -> None:
    fix = {"ts": 1795430000.0, "lat": 35.4, "lon": 116.5, "speed": 0, "mode": 3}
    assert compile_flat(FixSchema())(fix) == FixSchema().load(fix)


# the payloads that once stopped the server's worker for good
KILLERS = [
    b"[" * 1000 + b"]" * 1000,
    b'{"ts":1,"lat":1,"lon":' + b"1" * 5000 + b"}",
    b'{"ts":1,"lat":1,"lon":' + b"9" * 400 + b"}",
    b'{"ts":1,"lat":1,"lon":2,"alt":1e999}',
    b'{"batch":[' + b"{" * 50 + b"}" * 50 + b"]}",
    b'{"ts":1,"lat":1,"lon":2,"x":"' + b"[" * 5000 + b'"}',  # brackets in a string: fine
    b"\xef\xbb\xbf" + b'{"ts":1,"lat":1,"lon":2}',
    '{"ts":1,"lat":1,"lon":2}'.encode("utf-16"),
]


@pytest.mark.parametrize("payload", KILLERS[:5] + KILLERS[6:], ids=range(7))
def test_what_once_stopped_the_server_is_refused_as_any_bad_payload(payload: bytes) -> None:
    for channel in (Channel.POSITION, Channel.ACK, Channel.STATE, Channel.HEALTH):
        with pytest.raises(WireError):
            decode(channel, payload)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth(KILLERS[5]) == 1
    assert nesting_depth(b'{"a":"\\\\","b":[[["\\"]]]}') == 4
    assert nesting_depth('["unclosed [[[') >= 1
    assert decode(Channel.POSITION, KILLERS[5]) == [{"ts": 1.0, "lat": 1.0, "lon": 2.0}]


def test_an_alarm_keeps_what_it_can_and_says_what_it_dropped() -> None:
    bad_fix = b'{"alarm_id":"a1","ts":5,"kind":"panic","fix":{"ts":4,"lat":95,"lon":1}}'
    alarm = decode(Channel.ALARM, bad_fix)
    assert (alarm["alarm_id"], alarm["ts"], alarm["kind"]) == ("a1", 5.0, "panic")
    assert "fix" not in alarm and "lat" in alarm["dropped"][0]
    odd = decode(Channel.ALARM, b'{"alarm_id":"","ts":"x","kind":"fire","new_field":1}')
    assert odd["kind"] == "panic" and odd["ts"] is None and len(odd["dropped"]) == 3
    assert odd["alarm_id"].startswith("payload-")
    again = decode(Channel.ALARM, b'{"alarm_id":"","ts":"x","kind":"fire","new_field":1}')
    assert again["alarm_id"] == odd["alarm_id"]  # a redelivery is still recognised


@pytest.mark.parametrize("payload", KILLERS)
def test_even_an_unreadable_alarm_is_an_alarm(payload: bytes) -> None:
    alarm = decode(Channel.ALARM, payload)
    assert alarm["kind"] == "panic" and alarm["alarm_id"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_any_json_on_the_alarm_topic_is_an_alarm(data: Any) -> None:
    payload = json.dumps(data).encode()
    alarm = decode(Channel.ALARM, payload)
    assert alarm["kind"] in ("panic", "test")
    assert encode(Channel.ALARM, {**alarm, "ts": alarm["ts"] or 1.0})


@given(st.dictionaries(st.sampled_from([*FixSchema().fields, "extra"]), _VALUES, max_size=9))
def test_fix_problem_is_the_schemas_own_verdict(data: dict) -> None:
    try:
        FixSchema().load(data)
        valid = True
    except ValidationError:
        valid = False
    assert (fix_problem(data) is None) is valid


def test_the_contract_imports_no_transport() -> None:
    code = "import sys, wire, wire.screens; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    for transport in ("paho", "socketio", "flask", "server", "mqtt_link"):
        assert f"'{transport}'" not in loaded.stdout
