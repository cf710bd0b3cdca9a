"""Phones with Traccar Client against a live server: the OsmAnd protocol's two forms, its
units (knots), its answers (200, 400, 404), a flood from one device, and an SOS that is
never dropped and becomes an incident with an order like any panic."""

from __future__ import annotations

import time

import requests

from harness.clients import UnitLink
from harness.waiting import eventually

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
        # the SOS, in the flood and with a position that cannot be read, is taken
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
