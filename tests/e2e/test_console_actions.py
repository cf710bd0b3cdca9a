"""A dispatcher's whole set of actions from the console, in Chromium against a live server:
edit (and drag) an incident, notes, the plan again, send and divert, cancel and reassign,
resolve, hand over to a unit that accepts on its own screen, close, the follow-up call, out of
service and back, the duty level; the alerts list; time in status and what is late. Each is
checked in the store the API reads, not the page."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from harness.clients import Terminal, UnitLink
from harness.server import ADMIN
from harness.waiting import eventually
from tests.e2e.screens import open_screen, sign_in

SCENE = (35.404, 116.587)


@pytest.fixture
def desk(page, server_factory, mosquitto):
    """The console signed in on a live server with two cars online, and an incident open."""
    server = server_factory()
    tokens = {u: server.add_unit(u, name=f"Car {u[-1]}") for u in ("car-1", "car-2")}
    server.start()
    links = [UnitLink(mosquitto.port, u) for u in tokens]
    for link, at in zip(links, ((35.402, 116.587), (35.410, 116.590)), strict=True):
        link.online()
        link.fix(*at)
    eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")), what="cars placed")
    incident = server.new_incident("help", SCENE, priority=2, summary="Man fell in the street")
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, server)
    page.locator("#incidents li").first.click()
    expect(page.locator("#incident-head")).to_contain_text("P2 help · new")
    yield server, tokens, incident
    for link in links:
        link.close()


def units(server) -> dict[str, dict]:
    return {u["id"]: u for u in server.get("/api/v1/units")}


def detail(server, incident_id: str) -> dict:
    return server.get(f"/api/v1/incidents/{incident_id}")


def orders(server, incident_id: str) -> dict[str, str]:
    return {o["unit_id"]: o["state"] for o in detail(server, incident_id)["orders"]}


def act(page: Page, key: str, fields: dict[str, str], done: str) -> None:
    """Open an action by its key, fill its form, confirm, and wait for its answer."""
    page.locator("#incident-head").click()  # the focus out of any field: keys act
    page.keyboard.press(key)
    form = page.locator("#action-form")
    expect(form).to_be_visible()
    for label, value in fields.items():
        field = form.get_by_label(label, exact=True)
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.get_by_role("button", name="Confirm").click()
    expect(page.locator("#action-status")).to_have_text(done)


def test_a_dispatcher_edits_drags_notes_and_sends_the_plan_again_from_the_keyboard(
    desk, page, tmp_path
):
    server, _tokens, incident = desk
    act(page, "e", {"Priority": "P1", "Summary": "Man fell, bleeding"}, "Incident updated")
    changed = detail(server, incident["id"])
    assert (changed["priority"], changed["summary"]) == (1, "Man fell, bleeding")
    expect(page.locator("#incident-head")).to_contain_text("P1 help")

    act(page, "m", {"Note": "Caller waits at the bus stop"}, "Note sent")
    expect(page.locator("#timeline")).to_contain_text("Caller waits at the bus stop")

    marker = page.locator(".incident-icon").first.bounding_box()
    x, y = marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y + 10, steps=8)
    page.mouse.up()
    moved = eventually(
        lambda: (loc := detail(server, incident["id"])["location"])["lon"] > SCENE[1] and loc,
        what="the dragged location",
    )
    assert moved["lat"] < SCENE[0]  # dragged down the screen: south

    page.locator("#incident-head").click()
    page.keyboard.press("p")
    expect(page.locator("#action-form")).to_contain_text("Send the response plan again")
    page.locator("#action-form").get_by_role("button", name="Confirm").click()
    expect(page.locator("#action-status")).to_have_text("Plan sent")
    assert set(orders(server, incident["id"])) == {"car-1", "car-2"}  # P1 help: two cars
    expect(page.locator("#incident-orders li")).to_have_count(2)
    page.screenshot(path=str(tmp_path / "console-actions.png"))


def test_a_busy_unit_is_diverted_only_once_the_dispatcher_confirms_and_orders_are_reassigned(
    desk, page
):
    server, _tokens, incident = desk
    elsewhere = server.new_incident("dispute", (35.400, 116.590), priority=3)
    server.dispatch(elsewhere["id"], "car-1")
    eventually(lambda: units(server)["car-1"]["status"] != "available", what="car-1 busy")

    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    act(page, "s", {"Unit": "car-1"}, "Not done: not diverted: nothing sent")
    assert "car-1 is dispatched on another incident" in asked[0]
    assert orders(server, incident["id"]) == {}

    page.once("dialog", lambda d: d.accept())
    act(page, "s", {"Unit": "car-1"}, "Unit sent")
    assert orders(server, incident["id"]) == {"car-1": "sent"}
    # its old call is refilled by the next unit
    assert orders(server, elsewhere["id"]) == {"car-1": "cancelled", "car-2": "sent"}

    # car-2 is busy there now: asked again, once the console has its status (pushed each second)
    expect(page.locator("#unit-list li", has_text="Car 2")).to_contain_text("dispatched")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Reassign the order of car-1").click()
    form = page.locator("#action-form")
    form.get_by_label("Unit", exact=True).select_option("car-2")
    form.get_by_label("Reason", exact=True).fill("car-2 is nearer the bus stop")
    form.get_by_role("button", name="Confirm").click()
    expect(page.locator("#action-status")).to_have_text("Order reassigned")
    assert orders(server, incident["id"]) == {"car-1": "cancelled", "car-2": "sent"}

    page.get_by_role("button", name="Cancel the order of car-2").click()
    form.get_by_label("Send the next-best unit instead").check()
    form.get_by_role("button", name="Confirm").click()
    expect(page.locator("#action-status")).to_have_text("Order cancelled")
    after = detail(server, incident["id"])
    assert {o["unit_id"]: o["state"] for o in after["orders"]}["car-2"] == "cancelled"
    assert after["wanted"]  # no one free to replace it: wanted until a unit is


def test_a_call_is_resolved_handed_over_to_a_unit_that_accepts_it_closed_and_followed_up(
    desk, page
):
    server, tokens, incident = desk
    receiving = page.context.new_page()
    open_screen(receiving, server, "terminal", "car-2", tokens["car-2"])
    server.dispatch(incident["id"], "car-1")
    page.locator("#incident-head").click()
    expect(page.get_by_role("button", name="Close (C)")).to_be_disabled()  # resolve first

    act(page, "r", {"Note": "first aid given"}, "Marked resolved")
    act(
        page,
        "h",
        {"How": "scene", "Receiving unit": "car-2", "Reason": "car-2 takes him to hospital"},
        "Handed over",
    )
    expect(receiving.locator("#summary")).to_contain_text("Man fell in the street")
    receiving.get_by_role("button", name="Accept").click()
    expect(page.locator("#incident-orders li", has_text="car-2")).to_contain_text("accepted")
    handed = detail(server, incident["id"])
    assert handed["state"] == "handed_over" and handed["handover"]["to_unit"] == "car-2"

    act(page, "c", {"Disposition": "taken to hospital"}, "Closed")
    act(page, "f", {"Outcome": "satisfied", "Note": "thanked the officers"}, "Follow-up recorded")
    closed = detail(server, incident["id"])
    assert closed["state"] == "closed" and closed["disposition"] == "taken to hospital"
    assert closed["followup"]["outcome"] == "satisfied"
    timeline = page.locator("#timeline")
    for said in ("first aid given", "car-2 takes him to hospital", "taken to hospital"):
        expect(timeline).to_contain_text(said)
    events = server.get(f"/api/v1/incidents/{incident['id']}/timeline")
    by_the_dispatcher = {e["kind"] for e in events if e["actor"] == f"admin:{ADMIN}"}
    assert {"resolved", "handed_over", "closed", "followup"} <= by_the_dispatcher
    accepted = [e for e in events if e["kind"] == "order_accepted"]
    assert [e["unit_id"] for e in accepted] == ["car-2"]


def test_a_unit_goes_out_of_service_and_back_and_a_commander_sets_the_duty_level(desk, page):
    server, _tokens, _incident = desk
    page.get_by_role("button", name="Take Car 2 out of service").click()
    eventually(lambda: units(server)["car-2"]["status"] == "out_of_service", what="out")
    page.get_by_role("button", name="Put Car 2 back in service").click()
    eventually(lambda: units(server)["car-2"]["status"] == "available", what="back")

    page.get_by_label("Duty level").select_option("reinforced")
    expect(page.locator("#duty-status")).to_have_text("Duty level now reinforced")
    assert server.get("/api/v1/duty")["level"] == "reinforced"


def test_alerts_are_one_list_for_every_console_seen_once_and_still_there_after_a_reload(
    desk, page, browser, mosquitto
):
    server, _tokens, _incident = desk
    other = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(other, server, "/?lang=zh")
    server.add_unit("post-9", "guard_post")  # with no place of its own known
    post = UnitLink(mosquitto.port, "post-9")
    post.panic()  # no fix with it: no location
    server.new_incident("urgent", SCENE, priority=1, apply_plan=True)  # takes both cars
    wanting = server.new_incident("urgent", SCENE, priority=1, apply_plan=True, summary="Knife")
    alerts = page.locator("#alert-list li")
    expect(alerts).to_have_count(2)
    expect(alerts.nth(0)).to_contain_text("No location: place the incident on the map")
    expect(alerts.nth(1)).to_contain_text("No unit: 2 more motorcycle/patrol car needed")
    in_chinese = "无可派单位\uff1a还需 2 个摩托/巡逻车\uff0c暂无空闲"  # full-width colon, comma
    expect(other.locator("#alert-list li").nth(1)).to_contain_text(in_chinese)

    alerts.nth(1).get_by_role("button", name="Knife").click()  # the alert's incident opens
    expect(page.locator("#incident-head")).to_contain_text("P1 urgent · new · Knife")
    alerts.nth(1).get_by_role("button", name="Seen").click()
    expect(other.locator("#alert-list li")).to_have_count(1)  # seen for every console
    other.reload()
    expect(other.locator("#alert-list li")).to_have_count(1)
    expect(other.locator("#alert-list li")).to_contain_text("缺少位置")
    other.locator("#incident-head").evaluate("el => el.ownerDocument.activeElement.blur()")
    other.keyboard.press("a")  # the oldest, by key
    expect(page.locator("#alerts")).to_be_hidden()
    assert server.get("/api/v1/alerts") == []
    timeline = server.get(f"/api/v1/incidents/{wanting['id']}/timeline")
    [seen] = [e for e in timeline if e["kind"] == "alert_acknowledged"]
    assert seen["actor"] == f"admin:{ADMIN}" and seen["data"]["alert"] == "no_unit"
    expect(page.locator("#timeline")).to_contain_text(f"Alert seen · admin:{ADMIN}")
    other.context.close()
    post.close()


def test_what_is_late_goes_up_the_queue_and_every_step_and_unit_shows_its_time(desk, page):
    server, tokens, held = desk
    [order] = server.dispatch(held["id"], "car-1")
    terminal = Terminal(server.url, tokens["car-1"])
    for step in ("accepted", "on_scene"):
        terminal.ack(order["order_id"], step)
    terminal.close()
    server.new_incident("report", SCENE, priority=4, summary="Bicycle stolen")
    t0 = time.time()
    queue = page.locator("#incidents li")
    expect(queue).to_have_count(2)
    expect(queue.first).to_contain_text("Man fell")  # P2 before P4 while both are in time
    unit = page.locator("#unit-list li", has_text="Car 1")
    expect(unit.locator(".since")).to_have_text(re.compile(r"^0:\d\d$"))
    expect(unit).to_contain_text("on scene")

    page.clock.set_fixed_time(t0 + 200)  # the report has waited past 3 minutes
    expect(queue.first).to_contain_text("Bicycle stolen")
    expect(queue.first.locator(".timer")).to_have_class("timer amber")
    expect(page.locator("#incident-orders .step-timer")).to_have_class("step-timer")

    page.clock.set_fixed_time(t0 + 35 * 60)  # past 5 minutes; 35 min on scene at a help call
    expect(queue.first.locator(".timer")).to_have_class("timer red")
    expect(queue.nth(1).locator(".timer")).to_have_class("timer amber")  # 3/4 of 45 min
    step = page.locator("#incident-orders .step-timer")
    expect(step).to_have_class("step-timer amber")
    expect(step).to_have_text(re.compile(r"^3[45]:\d\d$"))
    expect(unit.locator(".since")).to_have_text(re.compile(r"^3[45]:\d\d$"))


def test_a_second_call_for_the_same_event_is_merged_from_the_panel(desk, page):
    server, _tokens, kept = desk
    [order] = server.dispatch(kept["id"], "car-1")
    second = server.new_incident("help", SCENE, priority=2, summary="Man lying on the road")
    page.locator("#incidents li", has_text="Man lying on the road").click()
    expect(page.locator("#incident-head")).to_contain_text("Man lying on the road")
    act(page, "j", {"Keep": kept["id"]}, "Merged")
    expect(page.locator("#incident-head")).to_contain_text("Man fell in the street")  # the one kept
    expect(page.locator("#timeline")).to_contain_text(f"merged in · {second['id']}")
    gone = detail(server, second["id"])
    assert (gone["state"], gone["merged_into"]) == ("closed", kept["id"])
    timeline = server.get(f"/api/v1/incidents/{kept['id']}/timeline")
    assert {"incident_created", "order_sent", "merged", "merged_in"} <= {
        e["kind"] for e in timeline
    }
    assert [o["order_id"] for o in detail(server, kept["id"])["orders"]] == [order["order_id"]]


def test_the_history_finds_todays_closed_calls_with_their_timeline_and_tracks(desk, page):
    server, _tokens, done = desk
    server.dispatch(done["id"], "car-1")
    for path, body in (("resolve", {"note": "taken home"}), ("close", {"disposition": "helped"})):
        status, answer = server.call("POST", f"/api/v1/incidents/{done['id']}/{path}", body)
        assert status == 200, answer
    server.new_incident("dispute", SCENE, priority=3, summary="Neighbours shouting")
    page.locator("#incident-close").click()
    history = page.locator("#history")
    history.get_by_label("Text to find").fill("fell")
    history.get_by_role("button", name="Search").click()  # today's closed ones, by default
    expect(page.locator("#history-status")).to_have_text("1 incident")
    found = page.locator("#history-list li")
    expect(found).to_contain_text("closed")
    expect(found).to_contain_text("Man fell in the street · helped")
    history.get_by_label("State").select_option("open")
    history.get_by_label("Text to find").fill("")
    history.get_by_role("button", name="Search").click()
    expect(found).to_have_count(1)
    expect(found).to_contain_text("Neighbours shouting")

    history.get_by_label("State").select_option("any")
    history.get_by_label("Unit").fill("car-1")
    history.get_by_role("button", name="Search").click()
    expect(found).to_have_count(1)
    found.click()  # its panel: the whole timeline, and the tracks of the units sent
    expect(page.locator("#incident-head")).to_contain_text("closed")
    expect(page.locator("#timeline")).to_contain_text("closed")
    page.get_by_role("button", name="Replay the track of car-1 on this call").click()
    expect(page.locator("#replay-status")).to_have_text("1 fixes of car-1")


def test_the_shifts_patrol_report_shows_each_unit_and_grid_and_downloads_as_csv(desk, page):
    server, _tokens, _incident = desk
    patrol = page.locator("#patrol")
    patrol.get_by_role("button", name="Show the shift's patrol").click()
    expect(page.locator("#patrol-status")).to_have_text("2 patrolling units")
    rows = page.locator("#patrol-units tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("car-1")
    expect(page.locator("#patrol-grids tbody tr")).to_have_count(1)  # no home grids: one line
    with page.expect_download() as download:
        patrol.get_by_role("link", name="CSV").click()
    lines = download.value.path().read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("unit_id,home_grid,officer,name,units,km") and len(lines) == 4
    report = server.get("/api/v1/patrol")
    assert [u["unit_id"] for u in report["units"]] == ["car-1", "car-2"]
    assert report["units"][0]["fixes"] == 1
    rows.first.click()  # its track for the shift
    expect(page.locator("#replay-status")).to_have_text("1 fixes of car-1")
