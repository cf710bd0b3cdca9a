"""OwnTracks' messages, as its booklet gives them, read into fieldlink's."""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote

import pytest

from server.commands.provisioning import owntracks_config, owntracks_link
from server.ingest.owntracks import OwnTracksError, read, unit_of_topic, waypoints_command
from wire import Channel

LOCATION = {  # the booklet's example, as the Android app sends it
    "_type": "location", "acc": 13, "alt": 42, "batt": 85, "bs": 1, "cog": 270, "conn": "m",
    "created_at": 1800000005, "lat": 31.2304, "lon": 121.4737, "tid": "07", "tst": 1800000000,
    "vac": 2, "vel": 18, "t": "u",
}  # fmt: skip


def test_a_location_is_a_fix_in_metres_per_second() -> None:
    got = read(LOCATION)
    assert got.channel is Channel.POSITION
    assert got.message == {
        "ts": 1800000000.0, "lat": 31.2304, "lon": 121.4737, "acc": 13.0, "alt": 42.0,
        "speed": pytest.approx(5.0), "heading": 270.0,
    }  # fmt: skip
    unknown_speed = read({**LOCATION, "vel": -1, "cog": -1})  # iOS: -1 for "not known"
    assert "speed" not in unknown_speed.message and "heading" not in unknown_speed.message


def test_lwt_is_offline_and_entering_an_orders_region_is_on_scene() -> None:
    assert read({"_type": "lwt", "tst": 1800000100}).message == {"online": False, "ts": 1800000100}
    enter = {"_type": "transition", "event": "enter", "desc": "ord-1", "tst": 1800000200,
             "wtst": 1800000000, "lat": 31.23, "lon": 121.47, "acc": 10, "t": "c"}  # fmt: skip
    got = read(enter)
    assert got.channel is Channel.ACK
    assert got.message == {"order_id": "ord-1", "ts": 1800000200, "status": "on_scene"}
    assert read({**enter, "event": "leave"}).channel is None


@pytest.mark.parametrize("kind", ["waypoints", "card", "status", "steps", "encrypted"])
def test_what_is_nothing_for_the_server_is_left_alone(kind: str) -> None:
    assert read({"_type": kind}).channel is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ([], "_type"),
        ({"lat": 1}, "_type"),
        ({"_type": "bogus"}, "unknown _type"),
        ({**LOCATION, "lat": "31.2"}, "JSON number"),
        ({**LOCATION, "tst": None}, "tst is missing"),
        ({**LOCATION, "lon": True}, "JSON number"),
    ],
)
def test_what_cannot_be_read_says_why(body, why: str) -> None:
    with pytest.raises(OwnTracksError, match=why):
        read(body)


def test_the_topic_names_the_unit() -> None:
    assert unit_of_topic("owntracks/vol-07/phone") == ("vol-07", "phone")
    assert unit_of_topic("owntracks/vol-07/phone/event") == ("vol-07", "phone")
    for topic in ("owntracks/vol-07", "owntracks/vol-07/phone/cmd", "owntracks/a b/phone"):
        with pytest.raises(OwnTracksError):
            unit_of_topic(topic)


def test_the_phone_gets_its_orders_regions_and_its_configuration_in_one_link() -> None:
    command = waypoints_command([{"order_id": "ord-1", "location": {"lat": 31.2, "lon": 121.4}}], 5)
    [region] = command["waypoints"]["waypoints"]
    assert command["action"] == "setWaypoints" and region["desc"] == "ord-1" and region["rad"] > 0
    config = owntracks_config("vol-07", "s3cret", "mqtts://broker.example:8883")
    assert (config["host"], config["port"], config["tls"]) == ("broker.example", 8883, True)
    assert config["username"] == "vol-07" and config["mode"] == 0
    link = owntracks_link(config)
    inline = unquote(link.removeprefix("owntracks:///config?inline="))
    assert json.loads(base64.b64decode(inline)) == config
