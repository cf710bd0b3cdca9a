"""Phones against a live server. Traccar Client: the OsmAnd protocol's two forms, its units
(knots), its answers (200, 400, 404), a flood from one device, and an SOS that is never
dropped and becomes an incident with an order like any panic. OwnTracks: over the
production broker config with the account `units add` gives it, and over HTTP, where the
regions of its orders come back to it and entering one puts the order on scene."""

from __future__ import annotations

import json
import time

import requests

from harness.clients import UnitLink
from harness.waiting import eventually
from tests.locked_broker import Probe, login

SCENE = (31.2304, 121.4737)


def units_by_id(server) -> dict[str, dict]:
    return {u["id"]: u for u in server.get("/api/v1/units")}


def position_of(server, unit_id: str) -> dict:
    return units_by_id(server).get(unit_id, {}).get("position") or {}


def test_traccar_client_reports_in_both_forms_and_bad_ones_get_the_protocols_answer(
    server_factory,
) -> None:
    server = server_factory()
    phone = server.add_unit("vol-07", "volunteer")
    server.start()
    osmand = f"{server.url}/osmand"

    now = time.time()
    sent = requests.get(
        osmand,
        params={"id": phone, "lat": SCENE[0], "lon": SCENE[1], "timestamp": int(now) - 5,
                "speed": 10, "bearing": 45, "accuracy": 8, "batt": 76},
        timeout=5,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    fix = eventually(lambda: position_of(server, "vol-07"), what="the phone's fix on the map")
    assert abs(fix["speed"] - 5.144) < 0.01 and fix["heading"] == 45  # knots became m/s

    body = {
        "device_id": phone,
        "location": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            "coords": {"latitude": SCENE[0] + 0.001, "longitude": SCENE[1], "speed": 1.2,
                       "accuracy": 4},
            "battery": {"level": 0.75},
        },
    }  # fmt: skip
    assert requests.post(osmand, json=body, timeout=5).status_code == 200
    eventually(lambda: position_of(server, "vol-07").get("lat") == SCENE[0] + 0.001)
    assert units_by_id(server)["vol-07"]["online"]

    bad = [
        ({"id": phone, "lon": SCENE[1]}, 400),  # no latitude
        ({"id": phone, "lat": "NaN", "lon": SCENE[1]}, 400),
        ({"id": phone, "lat": 95, "lon": SCENE[1]}, 400),  # out of range
        ({"id": "x" * 32, "lat": SCENE[0], "lon": SCENE[1]}, 404),  # nobody's device id
    ]
    for params, status in bad:
        assert requests.get(osmand, params=params, timeout=5).status_code == status, params
    far_future = {"id": phone, "lat": SCENE[0] + 0.5, "lon": SCENE[1], "timestamp": int(now) + 7200}
    assert requests.get(osmand, params=far_future, timeout=5).status_code == 200
    assert server.metric("fieldlink_rejected_total", source="osmand", reason="invalid") == 3
    assert server.metric("fieldlink_rejected_total", source="osmand", reason="unknown_unit") == 1
    time.sleep(1)  # the far-future fix is dropped by the server's own rule, never shown
    assert position_of(server, "vol-07")["lat"] == SCENE[0] + 0.001


def test_an_sos_from_a_phone_is_an_incident_with_an_order_even_amid_a_flood(
    server_factory, mosquitto
) -> None:
    server = server_factory()
    phone = server.add_unit("vol-08", "volunteer")
    server.add_unit("car-1")
    server.start()
    car = UnitLink(mosquitto.port, "car-1")
    try:
        car.online()
        car.fix(SCENE[0] + 0.002, SCENE[1])
        eventually(lambda: position_of(server, "car-1"), what="the car on the map")
        osmand = f"{server.url}/osmand"
        where = {"id": phone, "lat": SCENE[0], "lon": SCENE[1]}
        answers = [requests.get(osmand, params=where, timeout=5).status_code for _ in range(30)]
        assert 429 in answers and answers[0] == 200  # the flood is cut, counted
        # someone behind the same address guesses device ids until the address must wait
        for n in range(20):
            guess = {**where, "id": f"guess{n:02d}" + "x" * 20}
            assert requests.get(osmand, params=guess, timeout=5).status_code == 404
        assert requests.get(osmand, params=where, timeout=5).status_code == 429
        # the SOS, in the flood, from the waiting address, its position unreadable: taken
        sos = requests.get(osmand, params={**where, "lat": "north", "alarm": "sos"}, timeout=5)
        assert sos.status_code == 200
        incident = eventually(lambda: server.get("/api/v1/incidents"), timeout=20)[0]
        # its position unreadable, the phone's last fix places it
        assert incident["reported_by"] == "vol-08" and incident["location_source"] == "unit_fix"
        orders = eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["orders"])
        assert orders[0]["unit_id"] == "car-1"
        assert eventually(lambda: car.orders, what="the car's order")[0]["kind"] == "dispatch"
        assert server.metric("fieldlink_rejected_total", source="osmand", reason="flood") >= 1
    finally:
        car.close()


def owntracks_location(lat: float, lon: float, **extra) -> dict:
    return {"_type": "location", "lat": lat, "lon": lon, "tst": int(time.time()), "acc": 10,
            "vel": 36, "tid": "07", **extra}  # fmt: skip


def test_owntracks_over_the_production_broker_with_the_account_units_add_gives(
    locked_server, tmp_path
) -> None:
    server, broker = locked_server
    otrc = tmp_path / "vol-07.otrc"
    added = server.command(
        "units", "add", "vol-07", "--kind", "volunteer", "--protocol", "owntracks", "-o", str(otrc)
    )
    assert added.returncode == 0 and "OwnTracks" in added.stderr, added.stderr
    config = json.loads(otrc.read_text())
    url = f"mqtt://{config['username']}:{config['password']}@127.0.0.1:{broker.port}"
    eventually(lambda: not login(url).is_failure, what="the phone's account let in")
    phone = Probe(url, client_id=config["clientId"])
    assert not phone.connect().is_failure
    try:
        report = owntracks_location(*SCENE)
        assert not phone.publish("owntracks/vol-07/phone", json.dumps(report).encode()).is_failure
        fix = eventually(lambda: position_of(server, "vol-07"), what="the phone on the map")
        assert abs(fix["speed"] - 10.0) < 0.01  # 36 km/h
        # sent to a search, the phone gets the scene as a region; entering it is arrival
        assert not phone.subscribe("owntracks/vol-07/phone/cmd")[0].is_failure
        incident = server.new_incident("search", SCENE)
        [order] = server.dispatch(incident["id"], "vol-07")
        topic, payload = phone.received.get(timeout=5)
        command = json.loads(payload)
        assert topic == "owntracks/vol-07/phone/cmd" and command["action"] == "setWaypoints"
        [region] = command["waypoints"]["waypoints"]
        assert region["desc"] == order["order_id"] and region["lat"] == SCENE[0]
        enter = {"_type": "transition", "event": "enter", "desc": region["desc"], "t": "c",
                 "tst": int(time.time()), "lat": SCENE[0], "lon": SCENE[1], "acc": 5}  # fmt: skip
        event = "owntracks/vol-07/phone/event"
        assert not phone.publish(event, json.dumps(enter).encode()).is_failure
        eventually(
            lambda: (
                server.get(f"/api/v1/incidents/{incident['id']}")["orders"][0]["state"]
                == "on_scene"
            ),
            what="on scene by entering its region",
        )
        lwt = {"_type": "lwt", "tst": int(time.time())}
        assert not phone.publish("owntracks/vol-07/phone", json.dumps(lwt).encode()).is_failure
        eventually(lambda: not units_by_id(server)["vol-07"]["online"], what="offline by its will")
        # the ACL keeps a phone to its own topics: posing as another user is refused
        other = owntracks_location(SCENE[0] + 0.01, SCENE[1])
        refused = phone.publish("owntracks/car-1/phone", json.dumps(other).encode())
        assert refused.is_failure
    finally:
        phone.close()


def test_owntracks_over_http_gets_its_orders_regions_and_entering_one_is_arrival(
    server_factory,
) -> None:
    server = server_factory()
    token = server.add_unit("vol-09", "volunteer")
    server.start()
    owntracks = f"{server.url}/owntracks"

    def post(body, auth=("vol-09", token), **headers):
        return requests.post(owntracks, json=body, auth=auth, headers=headers, timeout=5)

    first = post(owntracks_location(*SCENE), **{"X-Limit-U": "vol-09", "X-Limit-D": "phone"})
    assert first.status_code == 200 and first.json() == []
    eventually(lambda: position_of(server, "vol-09"), what="the phone on the map")

    incident = server.new_incident("lost_person", SCENE, summary="a lost child near the gate")
    [order] = server.dispatch(incident["id"], "vol-09")
    [command] = post(owntracks_location(*SCENE)).json()
    [region] = command["waypoints"]["waypoints"]
    assert command["action"] == "setWaypoints" and region["desc"] == order["order_id"]

    enter = {"_type": "transition", "event": "enter", "desc": order["order_id"], "t": "c",
             "tst": int(time.time()), "lat": SCENE[0], "lon": SCENE[1], "acc": 5}  # fmt: skip
    assert post(enter).status_code == 200
    eventually(
        lambda: (
            server.get(f"/api/v1/incidents/{incident['id']}")["orders"][0]["state"] == "on_scene"
        ),
        what="the order on scene",
    )
    assert post({"_type": "waypoints", "waypoints": []}).json() is not None  # left alone

    assert post(owntracks_location(*SCENE), auth=("vol-09", "wrong" * 8)).status_code == 401
    assert post(owntracks_location(*SCENE), auth=("vol-10", token)).status_code == 401
    assert post(owntracks_location(*SCENE), **{"X-Limit-U": "car-1"}).status_code == 400
    assert post({"_type": "location", "lat": 31.2}).status_code == 400
    assert post({"_type": "location", "lat": 91, "lon": 0, "tst": 1}).status_code == 400
