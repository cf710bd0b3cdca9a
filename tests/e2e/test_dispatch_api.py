"""The dispatch brain end to end: a real server, real MQTT links, REST and Socket.IO clients.

Plans, recommendations, dispatcher actions, escalation (across a restart), OSRM drive times
from a fake OSRM server that also times out, arrival by position, and missing heartbeats.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from harness.clients import UnitLink
from harness.server import FIELDLINK
from harness.waiting import eventually
from server.rules.geo import GridMap, parse_grids
from server.store import Unit, db, save_grids
from tests.conftest import DATA
from tests.osrm_fake import OsrmFake
from wire import Channel

SCENE = (31.2300, 121.4700)
M_PER_DEG = 111_195.0


def units_of(server) -> dict[str, dict]:
    return {u["id"]: u for u in server.get("/api/v1/units")}


def orders_of(server, incident_id: str) -> list[dict]:
    return server.get(f"/api/v1/incidents/{incident_id}")["orders"]


def kinds_seen(link: UnitLink) -> list[tuple[str, str]]:
    return [(o["order_id"], o["kind"]) for o in list(link.orders)]


@pytest.fixture
def town(server_factory, mosquitto, request):
    """Start a server with `units` {id: (kind, metres north of the scene)} placed and online.

    Settings come from the test's `settings` marker; the scene is inside the test city's grids.
    """

    def start(
        units: dict[str, tuple[str, float]],
        async_mode: str = "threading",
        stale: dict[str, float] | None = None,
        **settings,
    ):
        server = server_factory(async_mode, **settings)
        with db.connection_context():
            save_grids(GRIDS)
        for unit_id, (kind, _) in units.items():
            server.add_unit(unit_id, kind, grid=grid_at(SCENE))
        server.start()
        links = {u: UnitLink(mosquitto.port, u) for u in units}
        for unit_id, (_, north_m) in units.items():
            links[unit_id].online()
            age = (stale or {}).get(unit_id, 0.0)
            links[unit_id].fix(SCENE[0] + north_m / M_PER_DEG, SCENE[1], time.time() - age)
        eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")))
        request.addfinalizer(lambda: [link.close() for link in links.values()])
        return server, links

    return start


GRIDS = parse_grids(json.loads((DATA / "city_grids.geojson").read_text()))


def grid_at(point: tuple[float, float]) -> str | None:
    return GridMap(GRIDS).grid_at(*point)


def new_incident(server, north_m: float = 0.0, **fields) -> dict:
    body = {
        "category": "dispute",
        "priority": 2,
        "location": {
            "lat": SCENE[0] + north_m / M_PER_DEG,
            "lon": SCENE[1],
            "address": "南京东路 100 号 / 100 Nanjing Rd E",
        },
        "summary": "Two drivers arguing after a collision",
        "caller": {"name": "王先生", "phone": "+86 138 0000 0000"},
        "by": "alice",
        **fields,
    }
    status, incident = server.call("POST", "/api/v1/incidents", body)
    assert status == 201, incident
    return incident


CARS = {
    "car-near": ("patrol_car", 200),
    "car-mid": ("patrol_car", 700),
    "car-far": ("patrol_car", 3000),
}


def test_a_guard_post_panic_sends_the_two_first_patrol_units_and_the_nearest_other_post(
    town, async_mode
) -> None:
    server, links = town(
        {
            **CARS,
            "kiosk-1": ("guard_post", 0),
            "kiosk-2": ("guard_post", 400),
            "kiosk-3": ("guard_post", 2000),
        },
        async_mode,
    )
    links["kiosk-1"].panic()
    incident = eventually(lambda: server.get("/api/v1/incidents"))[0]
    orders = eventually(
        lambda: len(orders_of(server, incident["id"])) == 3 and orders_of(server, incident["id"])
    )
    assert sorted(o["unit_id"] for o in orders) == ["car-mid", "car-near", "kiosk-2"]
    assert incident["grid"] == grid_at(SCENE) and incident["category"] == "urgent"
    for unit_id in ("car-near", "car-mid", "kiosk-2"):
        eventually(lambda u=unit_id: links[u].orders)
        assert links[unit_id].orders[0]["kind"] == "dispatch"
    assert not links["car-far"].orders and not links["kiosk-3"].orders
    units = units_of(server)
    assert units["car-near"]["status"] == "dispatched" and units["car-far"]["status"] == "available"
    timeline = server.get(f"/api/v1/incidents/{incident['id']}/timeline")
    assert [e["kind"] for e in timeline][:2] == ["alarm", "plan"]
    assert {e["actor"] for e in timeline if e["kind"] == "order_sent"} == {"dispatch"}


def test_recommendations_rank_by_eta_and_say_why_units_are_passed_over(town) -> None:
    server, _ = town(
        {**CARS, "bike": ("motorcycle", 760), "car-old": ("patrol_car", 100)},
        stale={"car-old": 300},
    )
    status, _ = server.call("PUT", "/api/v1/units/car-mid/status", {"status": "out_of_service"})
    assert status == 200
    incident = new_incident(server)
    answer = server.get(f"/api/v1/incidents/{incident['id']}/recommendations")
    assert answer["routing"] == {"source": "straight_line", "error": None}
    assert answer["grid"] == incident["grid"] == grid_at(SCENE)
    recs = answer["recommendations"]
    good = [r["unit_id"] for r in recs if r["recommendable"]]
    # the motorcycle is farther than the (out of service) mid car but beats the far one
    assert good == ["car-near", "bike", "car-far"]
    first = recs[0]
    assert first["distance_m"] == pytest.approx(200, abs=2)
    assert first["eta_s"] == pytest.approx(200 * 1.4 / 11, abs=0.5)
    assert first["echelon"] == "own_grid" and "own grid" in first["reason"]
    passed = {r["unit_id"]: r["reason"] for r in recs if not r["recommendable"]}
    assert "old" in passed["car-old"] and "limit 60 s" in passed["car-old"]
    assert passed["car-mid"] == "out of service"
    assert units_of(server)["car-mid"]["status"] == "out_of_service"
    limited = server.get(f"/api/v1/incidents/{incident['id']}/recommendations?limit=1")
    assert [r["unit_id"] for r in limited["recommendations"] if r["recommendable"]] == ["car-near"]


def test_dispatcher_actions_reach_the_units_and_fill_the_timeline(town) -> None:
    server, links = town({**CARS, "car-4": ("patrol_car", 1500)})
    console = server.console()
    incident = new_incident(server)
    iid = incident["id"]

    status, orders = server.call(
        "POST", f"/api/v1/incidents/{iid}/orders", {"unit_ids": ["car-near", "car-mid"], "by": "bo"}
    )
    assert status == 201 and [o["unit_id"] for o in orders] == ["car-near", "car-mid"]
    first, second = orders
    eventually(lambda: links["car-near"].orders and links["car-mid"].orders)
    sent = links["car-near"].orders[0]
    assert sent["kind"] == "dispatch" and sent["location"]["address"].startswith("南京东路")

    status, _ = server.call("POST", f"/api/v1/incidents/{iid}/notes", {"text": "knife seen"})
    assert status == 201
    update = eventually(lambda: [o for o in links["car-near"].orders if o["kind"] == "update"])[0]
    assert "knife seen" in update["summary"] and update["ts"] > sent["ts"]
    status, _ = server.call("PATCH", f"/api/v1/incidents/{iid}", {"priority": 1})
    assert status == 200
    eventually(lambda: [o for o in links["car-mid"].orders if o.get("priority") == 1])

    # reassign: the mid car is taken off, car-4 gets it
    status, new = server.call(
        "POST", f"/api/v1/orders/{second['order_id']}/reassign", {"unit_id": "car-4"}
    )
    assert status == 201 and new["unit_id"] == "car-4"
    eventually(lambda: (second["order_id"], "cancel") in kinds_seen(links["car-mid"]))
    eventually(lambda: links["car-4"].orders)

    # a unit busy elsewhere goes only when diverted
    other = new_incident(server, north_m=2500)
    status, refused = server.call(
        "POST", f"/api/v1/incidents/{other['id']}/orders", {"unit_ids": ["car-4"]}
    )
    assert status == 409 and "divert" in refused["message"]
    status, _ = server.call(
        "POST", f"/api/v1/incidents/{other['id']}/orders", {"unit_ids": ["car-4"], "divert": True}
    )
    assert status == 201
    diverted = next(o for o in orders_of(server, iid) if o["unit_id"] == "car-4")
    assert diverted["state"] == "cancelled" and "diverted" in diverted["end_reason"]
    # ... and the first incident got the next unit in car-4's place
    eventually(lambda: any(o["unit_id"] == "car-far" for o in orders_of(server, iid)))
    eventually(lambda: any(a["kind"] == "escalation" for a in console.of("alert")))

    # cancel the near car's order
    status, cancelled = server.call(
        "POST", f"/api/v1/orders/{first['order_id']}/cancel", {"reason": "not needed"}
    )
    assert status == 200 and cancelled["state"] == "cancelled"
    eventually(lambda: (first["order_id"], "cancel") in kinds_seen(links["car-near"]))
    assert units_of(server)["car-near"]["status"] == "available"

    # close needs a resolution or a handover first
    status, refused = server.call("POST", f"/api/v1/incidents/{iid}/close", {"disposition": "x"})
    assert status == 409 and "resolve it or hand it over first" in refused["message"]
    status, handed = server.call(
        "POST",
        f"/api/v1/incidents/{iid}/handover",
        {"kind": "station", "to_department": "Huangpu police station", "reason": "criminal case"},
    )
    assert status == 200 and handed["state"] == "handed_over"
    assert handed["handover"]["to_department"] == "Huangpu police station"
    status, closed = server.call(
        "POST", f"/api/v1/incidents/{iid}/close", {"disposition": "handed to station", "by": "bo"}
    )
    assert status == 200 and closed["state"] == "closed" and closed["closed_at"]
    assert all(o["state"] in ("cancelled", "cleared", "timed_out") for o in closed["orders"])
    status, followed = server.call(
        "POST", f"/api/v1/incidents/{iid}/followup", {"outcome": "satisfied", "note": "thanks"}
    )
    assert status == 200 and followed["followup"]["outcome"] == "satisfied"

    kinds = [(e["actor"], e["kind"]) for e in server.get(f"/api/v1/incidents/{iid}/timeline")]
    for expected in [
        ("admin:admin/alice", "incident_created"),
        ("admin:admin/bo", "order_sent"),
        ("admin:admin", "note"),
        ("admin:admin", "incident_updated"),
        ("admin:admin", "order_cancelled"),
        ("admin:admin", "handed_over"),
        ("admin:admin/bo", "closed"),
        ("admin:admin", "followup"),
    ]:
        assert expected in kinds
    console.close()


def test_bad_requests_get_clear_answers(town) -> None:
    server, _ = town({"car-near": CARS["car-near"]})
    incident = new_incident(server)
    cases = [
        (
            "POST",
            "/api/v1/incidents",
            {"category": "alien", "priority": 1, "location": {"lat": 31.2, "lon": 121.4}},
            422,
            "alien",
        ),
        (
            "POST",
            "/api/v1/incidents",
            {"category": "help", "priority": 7, "location": {"lat": 31.2, "lon": 121.4}},
            422,
            "",
        ),
        ("GET", "/api/v1/incidents/nope", None, 404, "no incident"),
        ("POST", "/api/v1/incidents/nope/orders", {"unit_ids": ["car-near"]}, 404, "no incident"),
        (
            "POST",
            f"/api/v1/incidents/{incident['id']}/orders",
            {"unit_ids": ["ghost"]},
            422,
            "no unit",
        ),
        ("POST", "/api/v1/orders/nope/cancel", {}, 404, "no order"),
        ("PUT", "/api/v1/duty", {"level": "panic"}, 422, ""),
        # characters no store keeps: NUL (PostgreSQL refuses it), an unpaired surrogate
        ("PUT", "/api/v1/duty", {"level": "normal", "by": "li\x00"}, 422, "U+0000"),
        (
            "POST",
            "/api/v1/incidents",
            {
                "category": "help",
                "priority": 1,
                "location": {"lat": 31.2, "lon": 121.4},
                "summary": "\ud800",
            },
            422,
            "U+D800",
        ),
        ("GET", "/api/v1/incidents/a%00b", None, 404, "U+0000"),
        ("GET", "/api/v1/units/car%01near/track", None, 404, "U+0001"),
        ("PUT", "/api/v1/grids", {"type": "FeatureCollection", "features": []}, 422, "no grids"),
    ]
    for method, path, body, status, text in cases:
        got, answer = server.call(method, path, body)
        assert got == status, (path, answer)
        assert text in str(answer), (path, answer)
    assert server.metric("fieldlink_rejected_total", source="rest", reason="refused") >= 3


JSON_BODY = {"Content-Type": "application/json"}


def test_hostile_bodies_get_a_4xx_that_says_why_and_are_never_read_whole(town) -> None:
    server, _ = town({"car-near": CARS["car-near"]})
    good = {"category": "help", "priority": 1, "location": {"lat": 31.2, "lon": 121.4}}
    cases = [
        ("[" * 100_000 + "]" * 100_000, 400, "nests deeper than 16"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, 400, "nests deeper than 16"),
        ('{"priority": ' + "9" * 5000 + "}", 400, "5000 characters"),
        ('{"priority": 1e999}', 400, "is not one a message carries"),
        ('{"priority": NaN}', 400, "NaN is not a number"),
        (json.dumps(good).encode("utf-16"), 400, "not JSON"),
        (b"\xef\xbb\xbf" + json.dumps(good).encode(), 400, "byte-order mark"),
        # a dispatcher's 64 MB body: refused from its Content-Length, before it is read
        (b'{"summary": "' + b"a" * (64 << 20) + b'"}', 413, ""),
    ]
    for body, status, text in cases:
        reply = server.request(
            "POST", "/api/v1/incidents", data=body, headers=JSON_BODY, timeout=30
        )
        assert reply.status_code == status, (str(body)[:40], reply.text[:200])
        assert text in reply.text, (str(body)[:40], reply.text[:200])
    assert server.metric("fieldlink_rejected_total", source="rest", reason="body") >= 7
    assert server.call("POST", "/api/v1/incidents", good)[0] == 201  # and it goes on


def test_an_order_not_accepted_in_time_goes_to_the_next_unit_and_a_decline_too(town) -> None:
    server, links = town(
        {**CARS, "kiosk-1": ("guard_post", 0)},
        plans_file=DATA / "one_unit_plans.toml",
        ack_timeouts_s="1=1.5,2=60,3=60,4=60",
    )
    console = server.console()
    links["kiosk-1"].panic()
    incident = eventually(lambda: server.get("/api/v1/incidents"))[0]
    first = eventually(lambda: orders_of(server, incident["id"]))[0]
    assert first["unit_id"] == "car-near"
    assert first["ack_deadline"] == pytest.approx(first["sent_at"] + 1.5)
    # nobody answers: after 1.5 s the order is taken back and the mid car gets the incident
    orders = eventually(
        lambda: len(orders_of(server, incident["id"])) == 2 and orders_of(server, incident["id"]),
        timeout=10,
    )
    assert orders[0]["state"] == "timed_out" and "not accepted" in orders[0]["end_reason"]
    assert orders[1]["unit_id"] == "car-mid"
    eventually(lambda: (first["order_id"], "cancel") in kinds_seen(links["car-near"]))
    alert = eventually(lambda: console.of("alert"))[0]
    assert alert["kind"] == "escalation" and "car-near" in alert["message"]

    links["car-mid"].ack(orders[1]["order_id"], "declined")
    orders = eventually(
        lambda: len(orders_of(server, incident["id"])) == 3 and orders_of(server, incident["id"])
    )
    assert orders[2]["unit_id"] == "car-far"
    links["car-far"].ack(orders[2]["order_id"], "accepted")
    time.sleep(2)  # past the deadline: an accepted order stays
    assert len(orders_of(server, incident["id"])) == 3
    assert server.metric("fieldlink_escalations_total") == 1
    console.close()


def test_escalation_timers_resume_after_a_server_restart(town) -> None:
    server, links = town(
        {**CARS, "kiosk-1": ("guard_post", 0)},
        plans_file=DATA / "one_unit_plans.toml",
        ack_timeouts_s="1=4,2=60,3=60,4=60",
    )
    links["kiosk-1"].panic()
    incident = eventually(lambda: server.get("/api/v1/incidents"))[0]
    first = eventually(lambda: orders_of(server, incident["id"]))[0]
    assert server.stop() == 0
    time.sleep(max(0.0, first["ack_deadline"] - time.time()) + 0.5)  # the deadline passes
    server.start()
    orders = eventually(
        lambda: len(orders_of(server, incident["id"])) == 2 and orders_of(server, incident["id"]),
        timeout=15,
    )
    assert orders[0]["state"] == "timed_out" and orders[1]["unit_id"] == "car-mid"
    eventually(lambda: links["car-mid"].orders)


def test_osrm_drive_times_rank_units_and_a_timeout_falls_back_to_the_straight_line(
    town, async_mode
) -> None:
    with OsrmFake() as osrm:
        far = (round(SCENE[0] + 3000 / M_PER_DEG, 5), SCENE[1])
        osrm.overrides[far] = 15.0  # a fast road: the far car arrives first
        server, links = town(
            {**CARS, "kiosk-1": ("guard_post", 0)},
            async_mode,
            osrm_url=osrm.url,
            osrm_timeout_s=0.5,
            plans_file=DATA / "one_unit_plans.toml",
        )
        incident = new_incident(server)
        answer = server.get(f"/api/v1/incidents/{incident['id']}/recommendations")
        assert answer["routing"] == {"source": "osrm", "error": None}
        first = answer["recommendations"][0]
        assert first["unit_id"] == "car-far" and first["eta_s"] == 15
        assert first["eta_source"] == "osrm" and "OSRM" in first["reason"]
        assert len(osrm.requests) == 1  # one 1-by-N table request

        links["kiosk-1"].panic()  # auto-dispatch asks OSRM too
        panic = eventually(lambda: [i for i in server.get("/api/v1/incidents") if i["reported_by"]])
        assert eventually(lambda: orders_of(server, panic[0]["id"]))[0]["unit_id"] == "car-far"

        osrm.mode = "slow"
        started = time.monotonic()
        answer = server.get(f"/api/v1/incidents/{incident['id']}/recommendations")
        assert time.monotonic() - started < 4
        assert answer["routing"]["source"] == "straight_line"
        assert "did not answer" in answer["routing"]["error"]
        assert answer["recommendations"][0]["unit_id"] == "car-near"
        # the post's first call is over (car-far still holds its order): a new call now
        server.call("POST", f"/api/v1/incidents/{panic[0]['id']}/resolve", {"note": "ok"})
        links["kiosk-1"].panic()
        second = eventually(
            lambda: (
                len([i for i in server.get("/api/v1/incidents") if i["reported_by"]]) == 2
                and server.get("/api/v1/incidents")[0]
            )
        )
        # car-far is busy; the straight line picks the near car despite OSRM timing out
        assert eventually(lambda: orders_of(server, second["id"]), timeout=10)[0]["unit_id"] == (
            "car-near"
        )
        assert server.metric("fieldlink_routing_failures_total") >= 2


def test_a_unit_that_stays_at_the_scene_is_stamped_on_scene(town) -> None:
    server, links = town(CARS, arrival_dwell_s=1.0)
    incident = new_incident(server)
    _status, [_order] = server.call(
        "POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": ["car-mid"]}
    )
    car = links["car-mid"]
    now = time.time()
    # a poor fix 120 m away with 400 m accuracy is not "there"; the accuracy allowance is capped
    for ts, north_m, acc in ((now, 120, 400), (now + 1, 30, 5), (now + 1.6, 20, 5)):
        car.send(
            Channel.POSITION,
            {"ts": ts, "lat": SCENE[0] + north_m / M_PER_DEG, "lon": SCENE[1], "acc": acc},
        )
    time.sleep(0.5)
    assert orders_of(server, incident["id"])[0]["state"] == "sent"  # 0.6 s inside: not yet
    car.fix(SCENE[0] + 10 / M_PER_DEG, SCENE[1], ts=now + 2.2)
    row = eventually(
        lambda: (
            orders_of(server, incident["id"])[0]["on_scene_at"]
            and orders_of(server, incident["id"])[0]
        )
    )
    assert row["state"] == "on_scene" and row["on_scene_at"] == pytest.approx(now + 1)
    detail = server.get(f"/api/v1/incidents/{incident['id']}")
    assert detail["state"] == "on_scene"
    assert detail["arrival_s"] == pytest.approx(now + 1 - detail["dispatched_at"], abs=0.2)
    timeline = server.get(f"/api/v1/incidents/{incident['id']}/timeline")
    assert ("arrival", "order_on_scene") in [(e["actor"], e["kind"]) for e in timeline]
    assert units_of(server)["car-mid"]["status"] == "on_scene"


def test_a_silent_unit_goes_offline_and_a_plan_waits_for_it(town) -> None:
    server, links = town({"car-near": CARS["car-near"]}, offline_after_s=1.5, timer_tick_s=0.2)
    eventually(lambda: units_of(server)["car-near"]["status"] == "offline", timeout=10)
    incident = new_incident(server, apply_plan=True)
    assert incident["orders"] == []
    assert incident["wanted"] == [{"kinds": ["motorcycle", "patrol_car"], "count": 1}]
    recs = server.get(f"/api/v1/incidents/{incident['id']}/recommendations")["recommendations"]
    assert recs[0]["recommendable"] is False and recs[0]["reason"] == "offline"
    status, refused = server.call(
        "POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": ["car-near"]}
    )
    assert status == 409 and "offline" in refused["message"]
    timeline = server.get(f"/api/v1/incidents/{incident['id']}/timeline")
    alert = next(e for e in timeline if e["kind"] == "no_unit")
    assert "car-near: offline" in alert["data"]["message"]

    links["car-near"].fix(SCENE[0], SCENE[1])  # heard again: online, and the plan is filled
    order = eventually(lambda: orders_of(server, incident["id"]))[0]
    assert order["unit_id"] == "car-near"
    assert server.get(f"/api/v1/incidents/{incident['id']}")["wanted"] is None
    eventually(lambda: units_of(server)["car-near"]["status"] == "dispatched")


def test_duty_level_changes_plans_and_timeouts_and_survives_a_restart(town) -> None:
    server, links = town({**CARS, "bike": ("motorcycle", 900), "kiosk-1": ("guard_post", 0)})
    plans = server.get("/api/v1/plans")
    assert plans["duty_level"] == "normal"
    assert plans["duty_levels"]["wartime"]["ack_timeout_s"]["1"] == 15
    status, duty = server.call("PUT", "/api/v1/duty", {"level": "wartime", "by": "chief"})
    assert status == 200 and duty == {"level": "wartime"}
    links["kiosk-1"].panic()
    incident = eventually(lambda: server.get("/api/v1/incidents"))[0]
    orders = eventually(
        lambda: len(orders_of(server, incident["id"])) == 4 and orders_of(server, incident["id"])
    )
    assert incident["duty_level"] == "wartime"
    assert orders[0]["ack_deadline"] - orders[0]["sent_at"] == pytest.approx(15)
    server.stop()
    server.start()
    assert server.get("/api/v1/duty") == {"level": "wartime"}


def test_grids_and_posts_import_by_cli_and_rest(server_factory, tmp_path) -> None:
    server = server_factory()
    run = subprocess.run(
        [FIELDLINK, "grids", "import", str(DATA / "city_grids.geojson")],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "grids imported" in run.stdout
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    run = subprocess.run(
        [FIELDLINK, "grids", "import", str(bad)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "bad.geojson" in run.stderr
    server.start()
    grids = server.get("/api/v1/grids")
    ids = sorted(f["properties"]["id"] for f in grids["features"])
    assert len(ids) >= 4 and all(f["properties"]["neighbours"] for f in grids["features"])

    posts = json.loads((DATA / "city_posts.geojson").read_text())
    status, answer = server.call("PUT", "/api/v1/posts", posts)
    assert status == 200 and answer["imported"] == len(posts["features"])
    stored = server.get("/api/v1/posts")["features"]
    assert all(p["properties"]["grid"] in ids for p in stored)
    assert {p["properties"]["tier_min"] for p in stored} == {1, 3, 5}
    status, answer = server.call(
        "PUT", "/api/v1/posts", {"type": "FeatureCollection", "features": [{"type": "Feature"}]}
    )
    assert status == 422 and answer["message"]


def test_the_days_response_figures_come_from_what_was_recorded(town) -> None:
    server, links = town({"car-near": CARS["car-near"]})
    incident = new_incident(server)
    _, [order] = server.call(
        "POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": ["car-near"]}
    )
    for status in ("accepted", "on_scene", "cleared"):
        links["car-near"].ack(order["order_id"], status)
    eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["state"] == "resolved")
    server.call("POST", f"/api/v1/incidents/{incident['id']}/close", {"disposition": "settled"})
    server.call("POST", f"/api/v1/incidents/{incident['id']}/followup", {"outcome": "satisfied"})

    figures = server.get("/api/v1/kpis?group_by=grid")
    assert figures["timezone"] == "Asia/Shanghai" and figures["since"] <= incident["created_at"]
    day = figures["all"]
    assert day["incidents"] == 1 and day["dispatch_to_arrival"]["n"] == 1
    assert day["first_response_rate"] == {"n": 1, "rate": 1.0}
    assert day["on_scene_resolution_rate"] == {"n": 1, "rate": 1.0}
    assert day["followups_done"] == {"n": 1, "rate": 1.0}
    assert set(figures["groups"]) == {grid_at(SCENE)}
    earlier = server.get(f"/api/v1/kpis?until={incident['created_at'] - 1}&since=0")
    assert earlier["all"]["incidents"] == 0
    status, answer = server.call("GET", "/api/v1/kpis?group_by=moon", None)
    assert status == 422 and "group_by" in str(answer)
    # the last 7 days by the command centre's calendar: midnight in Shanghai, six days back
    week = server.get("/api/v1/kpis?days=7")
    start = datetime.fromtimestamp(week["since"], ZoneInfo("Asia/Shanghai"))
    assert (start.hour, start.minute) == (0, 0) and week["all"]["incidents"] == 1
    assert figures["since"] - week["since"] == pytest.approx(6 * 86400)


def test_a_shifts_patrol_report_and_the_cold_spot_map(town) -> None:
    server, links = town({"car-near": CARS["car-near"], "car-mid": CARS["car-mid"]})
    t0 = time.time() - 1000
    drive = [(t0 + 10 * i, 100.0 * i) for i in range(31)]  # 3 km north at 10 m/s
    parked = [(t0 + 300 + 10 * i, 3000.0) for i in range(1, 31)]  # then 5 minutes still
    batch = [
        {"ts": ts, "lat": SCENE[0] + north / M_PER_DEG, "lon": SCENE[1]}
        for ts, north in drive + parked
    ]
    links["car-mid"].send(Channel.POSITION, {"batch": batch})
    report = eventually(
        lambda: (
            (
                r := server.get(
                    f"/api/v1/units/car-mid/patrol?since={t0 - 1}&until={t0 + 700}&stop_min=4"
                )
            )
            and r["fixes"] == 61
            and r
        )
    )
    assert report["home_grid"] == grid_at(SCENE)
    assert report["km"] == pytest.approx(3.0, rel=0.001)
    assert report["moving_s"] == 300 and report["stationary_s"] == 300
    assert report["in_home_grid_s"] == 40  # the first 300 m, then the grid to the north
    [stop] = report["stops"]
    assert stop["minutes"] == 5.0 and stop["from"] == pytest.approx(t0 + 300)
    assert server.call("GET", "/api/v1/units/ghost/patrol", None)[0] == 404

    cold = server.get("/api/v1/coverage?cell_m=500")
    assert cold["type"] == "FeatureCollection" and cold["reach_s"] == 900
    assert sum(cold["counts"].values()) == len(cold["features"]) > 0
    here = next(
        f
        for f in cold["features"]
        if f["geometry"]["coordinates"][0][0][1] <= SCENE[0] < f["geometry"]["coordinates"][0][2][1]
        and f["geometry"]["coordinates"][0][0][0]
        <= SCENE[1]
        < f["geometry"]["coordinates"][0][1][0]
    )
    assert here["properties"]["colour"] == "green"


def test_a_track_replays_and_exports_and_incidents_and_figures_download(town) -> None:
    server, links = town({"car-mid": CARS["car-mid"]})
    t0 = time.time() - 100
    links["car-mid"].send(
        Channel.POSITION,
        {
            "batch": [
                {"ts": t0 + i, "lat": SCENE[0] + i / M_PER_DEG, "lon": SCENE[1]} for i in range(5)
            ]
        },
    )
    period = f"since={t0 - 1}&until={t0 + 10}"
    track = eventually(
        lambda: (
            (t := server.get(f"/api/v1/units/car-mid/track?{period}"))
            and t["features"][0]["properties"]["fixes"] == 5
            and t
        )
    )
    assert track["features"][0]["properties"]["times"][0] == pytest.approx(t0)
    gpx = server.request("GET", f"/api/v1/units/car-mid/track.gpx?{period}")
    assert gpx.headers["Content-Type"].startswith("application/gpx+xml")
    assert gpx.text.count("<trkpt") == 5
    new_incident(server)
    incidents = server.request("GET", "/api/v1/incidents.csv")
    assert incidents.headers["Content-Disposition"] == "attachment; filename=incidents.csv"
    assert incidents.text.splitlines()[0].startswith("id,category,priority,state,grid")
    assert len(incidents.text.splitlines()) == 2
    figures = server.request("GET", "/api/v1/kpis.csv?group_by=category")
    assert [line.split(",")[0] for line in figures.text.splitlines()[1:]] == ["all", "dispute"]
    bad = server.request("GET", "/api/v1/kpis.csv?group_by=moon")
    assert bad.status_code == 422 and "group_by" in bad.text
    assert server.request("GET", "/api/v1/units/ghost/track.gpx").status_code == 404


def test_a_plan_sent_after_the_call_and_the_nearest_policy_asks_no_router(town) -> None:
    with OsrmFake() as osrm:
        far = (round(SCENE[0] + 3000 / M_PER_DEG, 5), SCENE[1])
        osrm.overrides[far] = 15.0  # by drive time the far car would arrive first
        server, links = town(
            CARS,
            osrm_url=osrm.url,
            dispatch_policy="nearest",
            plans_file=DATA / "one_unit_plans.toml",
        )
        incident = new_incident(server)  # entered while the call is taken: no units yet
        assert incident["orders"] == [] and incident["state"] == "new"
        status, sent = server.call("POST", f"/api/v1/incidents/{incident['id']}/plan", {})
        assert status == 200 and [o["unit_id"] for o in sent["orders"]] == ["car-near"]
        assert osrm.requests == []
        eventually(lambda: links["car-near"].orders)
        timeline = server.get(f"/api/v1/incidents/{incident['id']}/timeline")
        assert ("plan", "admin:admin") in [(e["kind"], e["actor"]) for e in timeline]

        status, _ = server.call("POST", f"/api/v1/incidents/{incident['id']}/resolve", {})
        assert status == 200
        status, refused = server.call("POST", f"/api/v1/incidents/{incident['id']}/plan", {})
        assert status == 409 and "resolved" in refused["message"]


def test_a_state_from_1970_or_the_future_counts_at_the_time_it_came(town) -> None:
    server, links = town({"car-near": CARS["car-near"]})
    link = links["car-near"]

    def online_since() -> float | None:
        with db.connection_context():
            unit = Unit.get_by_id("car-near")
        return unit.online_since if unit.online else None

    for device_ts in (0.0, time.time() + 3 * 86400):  # a Pi without a clock; one far ahead
        link.send(Channel.STATE, {"online": False, "ts": time.time()})
        eventually(lambda: online_since() is None, what="offline")
        sent = time.time()
        link.send(Channel.STATE, {"online": True, "ts": device_ts})
        since = eventually(online_since, what="back online")
        assert sent - 1 <= since <= time.time() + 1, (device_ts, since)
    assert server.metric("fieldlink_device_time_distrusted_total", channel="state") >= 2
