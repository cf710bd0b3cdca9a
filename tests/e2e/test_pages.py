"""The pages in a real headless Chromium: the terminal gets and acknowledges an order, the
console map shows the fleet and the incident."""

from __future__ import annotations

import json
import re
import time

from playwright.sync_api import expect

from harness.clients import Terminal, UnitLink
from harness.server import ADMIN
from harness.waiting import eventually
from server.store import Position, db
from tests.conftest import DATA
from tests.e2e.screens import open_screen, sign_in
from wire import Channel


def test_terminal_page_shows_the_order_and_the_officer_acknowledges_it(page, city, tmp_path):
    server, tokens, links = city
    open_screen(page, server, "terminal", "car-1", tokens["car-1"])
    decline = page.get_by_role("button", name="Decline")
    expect(decline).to_be_disabled()

    links["kiosk-1"].panic()
    expect(page.locator("#summary")).to_contain_text("Panic button at City Hospital")
    expect(page.locator("#priority")).to_have_text("P1")
    expect(page.locator("#way")).to_have_text("0.3 km away · ETA 1 min")  # 333 m north
    page.get_by_role("button", name="Accept").click()
    expect(page.locator("#state")).to_have_text("Accepted")
    expect(decline).to_be_disabled()  # too late to decline once accepted
    page.get_by_role("button", name="En route").click()
    expect(page.locator("#state")).to_have_text("En route")
    expect(page.locator("#past li")).to_have_count(1)
    expect(page.locator("#past li")).to_contain_text("En route")
    page.screenshot(path=str(tmp_path / "terminal.png"))

    incident = server.get("/api/v1/incidents")[0]
    [order] = server.get(f"/api/v1/incidents/{incident['id']}")["orders"]
    assert order["state"] == "en_route" and order["delivered_at"] and order["accepted_at"]


def test_terminal_declines_with_a_reason_and_keeps_the_shift_in_chinese(page, city):
    server, tokens, _links = city
    page.goto(f"{server.url}/terminal?token={tokens['car-1']}&lang=zh")
    expect(page.locator("#link")).to_have_text("在线")
    status, incident = server.call(
        "POST",
        "/api/v1/incidents",
        {"category": "dispute", "priority": 2, "location": {"lat": 35.41, "lon": 116.587}},
    )
    assert status == 201
    server.call("POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": ["car-1"]})
    expect(page.locator("#category")).to_have_text("纠纷")
    page.get_by_role("button", name="拒绝").click()
    page.get_by_role("button", name="车辆故障").click()
    expect(page.locator("#no-order")).to_be_visible()
    expect(page.locator("#past li")).to_contain_text("已拒绝")
    [order] = eventually(  # the screen shows it at once; the server has it a moment later
        lambda: [
            o
            for o in server.get(f"/api/v1/incidents/{incident['id']}")["orders"]
            if o["state"] == "declined"
        ]
    )
    assert order["decline_reason"] == "车辆故障"
    page.reload()  # the shift's orders stay on the screen
    expect(page.locator("#past li")).to_have_count(1)


def test_terminal_page_with_a_bad_token_says_so(page, city):
    server, _tokens, _links = city
    page.goto(f"{server.url}/terminal?token=forged&lang=en")
    expect(page.locator("#message")).to_contain_text("unknown or missing device token")
    expect(page.locator("#link")).to_have_text("offline")


def test_console_map_shows_units_and_a_new_incident(page, city, tmp_path):
    server, _tokens, links = city
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, server)
    expect(page.locator("#link")).to_have_text("online")
    expect(page.locator("path.leaflet-interactive")).to_have_count(2)
    links["kiosk-1"].panic()
    expect(page.locator("#incidents li")).to_have_count(1)
    expect(page.locator("#incidents li").first).to_contain_text("urgent")
    alarm = page.locator("#alarm")
    expect(alarm).to_contain_text("PANIC from kiosk-1")
    page.wait_for_timeout(2000)  # it stays up, beeping, until someone acknowledges it
    expect(alarm).to_be_visible()
    expect(alarm).to_have_attribute("data-sounding", "yes")
    page.screenshot(path=str(tmp_path / "console.png"))
    page.keyboard.press("Enter")
    units = page.locator("#unit-list li")
    expect(units).to_have_count(2)
    page.get_by_label("Kind").select_option("guard_post")
    expect(units).to_contain_text(["City Hospital · guard post · - · available"])
    markers = page.locator("path.leaflet-interactive")
    before = [markers.nth(i).bounding_box()["y"] for i in range(2)]
    links["car-1"].send(
        Channel.POSITION,
        {"ts": time.time(), "lat": 35.4035, "lon": 116.587, "speed": 10.0, "heading": 90.0},
    )  # a moving car shows where it heads
    expect(page.locator(".heading-icon span")).to_have_attribute(
        "style", "transform: rotate(90deg)"
    )
    after = [markers.nth(i).bounding_box()["y"] for i in range(2)]
    assert sorted(b - a for a, b in zip(before, after, strict=True))[0] < -20  # moved north
    expect(alarm).to_be_hidden()
    expect(alarm).to_have_attribute("data-sounding", "no")


def test_dashboard_shows_the_days_figures_and_the_arrival_histogram(page, city):
    server, _, links = city
    status, incident = server.call(
        "POST",
        "/api/v1/incidents",
        {"category": "help", "priority": 2, "location": {"lat": 35.405, "lon": 116.587}},
    )
    assert status == 201
    _, [order] = server.call(
        "POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": ["car-1"]}
    )
    links["car-1"].ack(order["order_id"], "on_scene")
    eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["on_scene_at"])
    sign_in(page, server, "/dashboard?lang=en")
    expect(page.locator("#incidents")).to_have_text("1")
    expect(page.locator("#first")).to_have_text("100 %")
    expect(page.locator("#status")).to_contain_text("updated")
    bars = page.evaluate("Chart.getChart('histogram').data.datasets[0].data")
    assert sum(bars) == 1 and bars[0] == 1  # arrived within the first 30 s bin
    assert page.evaluate("Chart.getChart('trend').data.labels.length") == 1
    expect(page.locator("h1")).to_have_text("Response figures")
    page.get_by_role("button", name="Language / 语言").click()  # as every screen has
    expect(page.locator("h1")).to_have_text("勤务指标")
    expect(page.locator("#first")).to_have_text("100 %")
    assert page.evaluate("Chart.getChart('histogram').options.scales.x.title.text") == "分钟"


def test_console_overlays_cold_spots_and_replays_a_track(page, city, tmp_path):
    server, _tokens, links = city
    posts = json.loads((DATA / "city_posts.geojson").read_text())
    assert server.call("PUT", "/api/v1/posts", posts)[0] == 200
    now = time.time()
    track = [(35.4000, 116.5800), (35.4010, 116.5805), (35.4020, 116.5810)]
    for i, (lat, lon) in enumerate(track):
        links["car-1"].fix(lat, lon, now - 60 + 20 * i)

    def stored_fixes() -> int:
        return server.get("/api/v1/units/car-1/track")["features"][0]["properties"]["fixes"]

    eventually(lambda: stored_fixes() == 4)
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, server)
    expect(page.locator("#link")).to_have_text("online")

    expect(page.locator(".post-icon")).to_have_count(len(posts["features"]))  # the posts
    page.get_by_label("Show how fast an available car gets there").check()
    expect(page.locator("#coverage-status")).to_contain_text("green")
    assert page.locator("path.cell.green").count() > 0
    counts = server.get("/api/v1/coverage")["counts"]
    assert page.locator("path.cell").count() == sum(counts.values())

    page.locator("#replay-unit").select_option("car-1")
    page.get_by_role("button", name="Show track").click()
    expect(page.locator("#replay-status")).to_have_text("4 fixes of car-1")
    expect(page.locator("path.track")).to_have_count(1)
    head = page.locator("path.track-head")
    first_box = head.bounding_box()
    page.locator("#replay-pos").fill("3")  # the slider to the last fix
    expect(page.locator("#replay-time")).not_to_be_empty()
    assert head.bounding_box()["y"] < first_box["y"]  # moved north
    page.get_by_role("button", name="Play").click()  # from the start again, at 60x
    expect(page.get_by_role("button", name="Play")).to_be_visible(timeout=5000)
    assert page.locator("#replay-pos").input_value() == "3"
    href = page.locator("#replay-gpx").get_attribute("href")
    assert href.startswith("/api/v1/units/car-1/track.gpx?since=")
    page.screenshot(path=str(tmp_path / "console-layers.png"))


def test_kiosk_panic_is_held_to_confirm_and_follows_its_call_until_arrival(page, city, tmp_path):
    server, tokens, links = city
    open_screen(page, server, "kiosk", "kiosk-1", tokens["kiosk-1"])
    panic = page.get_by_role("button", name="PANIC")
    box = panic.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()  # a brush against the button calls no one
    page.wait_for_timeout(500)
    page.mouse.up()
    page.wait_for_timeout(300)
    assert server.get("/api/v1/incidents") == []

    page.mouse.down()
    page.wait_for_timeout(2300)
    page.mouse.up()
    steps = page.locator("#steps li.done")
    expect(steps).to_have_text(["Pressed", "Received by the centre", "Dispatched"])
    expect(page.locator("#coming li")).to_have_text("Car 1 · sent · ETA 1 min")
    [incident] = server.get("/api/v1/incidents")
    assert incident["reported_by"] == "kiosk-1"
    [order] = server.get(f"/api/v1/incidents/{incident['id']}")["orders"]

    links["car-1"].ack(order["order_id"], "en_route")
    expect(steps).to_have_text(["Pressed", "Received by the centre", "Dispatched", "Unit en route"])
    links["car-1"].ack(order["order_id"], "on_scene")
    expect(steps).to_have_count(5)
    expect(page.locator("#coming li")).to_have_text("Car 1 · on scene")
    page.get_by_role("button", name="Language / 语言").click()
    expect(page.locator("#steps li").last).to_have_text("已到达")
    page.goto(f"{server.url}/kiosk")  # token and language kept; the call comes back on sync
    expect(page.locator("#steps li.done")).to_have_count(5)
    expect(page.locator("#steps li.done").last).to_have_text("已到达")
    expect(page.locator("#no-call")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "kiosk.png"))


def test_kiosk_shows_a_request_to_assist_a_neighbouring_post(page, server_factory, mosquitto):
    server = server_factory()
    server.add_unit("car-1", name="Car 1")
    tokens = {
        k: server.add_unit(k, "guard_post", name=f"Post {k[-1]}") for k in ("kiosk-1", "kiosk-2")
    }
    server.start()
    links = {u: UnitLink(mosquitto.port, u) for u in ("car-1", "kiosk-1", "kiosk-2")}
    try:
        links["car-1"].online()
        links["car-1"].fix(35.402, 116.587)
        links["kiosk-1"].fix(35.405, 116.587)
        links["kiosk-2"].fix(35.4055, 116.587)
        eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")))
        open_screen(page, server, "kiosk", "kiosk-2", tokens["kiosk-2"])
        expect(page.locator("#no-request")).to_be_visible()

        links["kiosk-1"].panic()  # the plan for a post's panic sends the nearest other post
        request = page.locator("#requests li")
        expect(request).to_contain_text("Panic button at Post 1")
        request.get_by_role("button", name="Accept").click()
        expect(request.get_by_role("button", name="Done")).to_be_visible()
        request.get_by_role("button", name="Done").click()
        expect(page.locator("#no-request")).to_be_visible()
        [incident] = server.get("/api/v1/incidents")
        orders = server.get(f"/api/v1/incidents/{incident['id']}")["orders"]
        assert {o["unit_id"]: o["state"] for o in orders}["kiosk-2"] == "cleared"
    finally:
        for link in links.values():
            link.close()


def test_console_creates_an_incident_on_the_map_and_dispatches_it_to_a_terminal(page, city):
    server, tokens, _links = city
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, server)
    expect(page.locator("#link")).to_have_text("online")
    terminal = page.context.new_page()
    open_screen(terminal, server, "terminal", "car-1", tokens["car-1"])

    page.locator("#map").click(position={"x": 120, "y": 120})
    form = page.locator(".new-incident")
    form.get_by_label("Category").select_option("help")
    form.get_by_label("Summary").fill("Elderly man fell in the street")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("#incident-head")).to_contain_text("P2 help · new")
    expect(page.locator(".incident-icon.p2")).to_have_count(1)
    page.get_by_role("button", name="Dispatch car-1").click()

    expect(terminal.locator("#summary")).to_have_text("Elderly man fell in the street")
    terminal.get_by_role("button", name="Accept").click()
    expect(page.locator("#incident-orders li")).to_contain_text("car-1 · accepted")
    expect(page.locator("#timeline li").first).to_contain_text("incident created")
    [incident] = server.get("/api/v1/incidents")
    assert incident["state"] == "dispatched" and incident["summary"].startswith("Elderly")

    # changes close together come as one `changes` event: each reaches its own handler
    page.evaluate(
        """() => window.fieldlinkSocket.listeners("changes")[0]([
            ["order", {"incident_id": "elsewhere"}],
            ["alarm", {"kind": "panic", "unit_id": "post-9"}],
        ])"""
    )
    expect(page.locator("#alarm-list li")).to_contain_text("post-9")


def test_console_speaks_chinese_first_and_works_from_the_keyboard(page, city):
    server, _tokens, _links = city
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, server, "/")
    expect(page.locator("#link")).to_have_text("在线")
    expect(page.get_by_role("heading", name="警情队列")).to_be_visible()

    page.locator("body").press("n")  # a new incident at the map's centre, from the keyboard
    form = page.locator(".new-incident")
    expect(form.get_by_label("类别")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("路口两车相撞")
    page.keyboard.press("Enter")
    expect(page.locator("#incident-head")).to_contain_text("P2 紧急 · 新建 · 路口两车相撞")
    dispatch = page.get_by_role("button", name="派遣 car-1")
    dispatch.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#incident-orders li")).to_contain_text("car-1 · 已派")
    page.keyboard.press("Escape")
    expect(page.locator("#incident")).to_be_hidden()

    # the queue: by priority, each with its clock running since the call
    server.call(
        "POST",
        "/api/v1/incidents",
        {"category": "help", "priority": 1, "location": {"lat": 35.404, "lon": 116.588}},
    )
    queue = page.locator("#incidents li")
    expect(queue).to_have_count(2)
    expect(queue.first).to_contain_text("P1 求助")
    expect(queue.nth(1)).to_contain_text("P2 紧急 · 已派")
    expect(queue.first.locator(".timer")).to_have_text(re.compile(r"^0:\d\d$"))
    expect(page.locator("#queue-count")).to_have_text("(2)")
    queue.first.focus()  # a pushed change re-renders the queue and keeps the focus
    page.wait_for_timeout(1500)
    expect(queue.first).to_be_focused()

    page.get_by_role("button", name="Language / 语言").click()
    expect(page.get_by_role("heading", name="Incident queue")).to_be_visible()
    expect(queue.first).to_contain_text("P1 help · new")
    # every control on the panel can be reached with Tab
    unreachable = page.evaluate(
        """() => [...document.querySelectorAll(
                    'aside button, aside select, aside input, aside a, aside li[tabindex]')]
              .filter((el) => el.offsetParent !== null && el.tabIndex < 0)
              .map((el) => el.outerHTML)"""
    )
    assert unreachable == []


# WCAG 2 AA: 4.5:1 for text, 3:1 for large text (24 px, or 18.66 px bold)
CONTRAST = """(selector) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0.5) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll(selector)) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null) continue;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color)), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) low.push(`${el.outerHTML.slice(0, 80)}: ${ratio.toFixed(2)}`);
  }
  return low;
}"""


def test_console_and_login_text_meets_the_contrast_norm(page, city):
    server, _tokens, links = city
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{server.url}/login?next=/")
    page.fill("input[name=password]", "wrong-password")
    page.fill("input[name=name]", ADMIN)
    page.locator("form button[type=submit]").click()
    expect(page.locator("#error")).to_be_visible()
    assert page.evaluate(CONTRAST, "body *") == []
    sign_in(page, server)
    expect(page.locator("#link")).to_have_text("online")  # alarms reach connected consoles
    for priority in (1, 2, 3, 4):
        server.call(
            "POST",
            "/api/v1/incidents",
            {"category": "help", "priority": priority, "location": {"lat": 35.404, "lon": 116.588}},
        )
    links["kiosk-1"].panic()
    expect(page.locator("#alarm")).to_be_visible()
    expect(page.locator(".incident-icon")).to_have_count(5)
    assert page.evaluate(CONTRAST, "aside *, .incident-icon") == []
    page.get_by_role("button", name="Acknowledge (Enter)").focus()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the keyboard's focus shows


def test_an_alarm_rings_on_every_console_until_one_acknowledges_it_also_after_a_reload(
    browser, city
):
    server, _tokens, links = city
    consoles = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        consoles.append(context.new_page())
        sign_in(consoles[-1], server)
        expect(consoles[-1].locator("#link")).to_have_text("online")
    first, second = consoles
    links["kiosk-1"].panic()
    for console in consoles:
        expect(console.locator("#alarm")).to_contain_text("PANIC from kiosk-1")
    first.reload()  # nobody acknowledged it: it rings again after a reload
    expect(first.locator("#alarm")).to_contain_text("PANIC from kiosk-1")
    expect(first.locator("#alarm")).to_have_attribute("data-sounding", "yes")

    second.get_by_role("button", name="Acknowledge (Enter)").click()
    for console in consoles:  # silenced everywhere at once
        expect(console.locator("#alarm")).to_be_hidden()
    first.reload()
    expect(first.locator("#link")).to_have_text("online")
    expect(first.locator("#alarm")).to_be_hidden()
    [incident] = server.get("/api/v1/incidents")
    [heard] = [
        e
        for e in server.get(f"/api/v1/incidents/{incident['id']}/timeline")
        if e["kind"] == "alarm_acknowledged"
    ]
    assert heard["actor"] == "admin:admin"
    for console in consoles:
        console.context.close()


def test_an_alarm_with_no_place_rings_until_a_dispatcher_places_it_on_the_map(
    page, server_factory, mosquitto, tmp_path
):
    server = server_factory()
    server.add_unit("car-1", name="Car 1")
    server.add_unit("kiosk-9", "guard_post", name="New kiosk")  # no fix ever, no post
    server.start()
    car, kiosk = UnitLink(mosquitto.port, "car-1"), UnitLink(mosquitto.port, "kiosk-9")
    try:
        car.online()
        car.fix(35.402, 116.587)
        eventually(lambda: server.get("/api/v1/units/car-1")["position"])
        page.set_viewport_size({"width": 1280, "height": 800})
        sign_in(page, server)
        expect(page.locator("#link")).to_have_text("online")
        kiosk.panic()
        alarm = page.locator("#alarm")
        expect(alarm).to_contain_text("No location: Panic button at New kiosk")
        kiosk.panic()  # pressed again: the same call, pressed twice
        expect(alarm).to_contain_text("pressed 2 times")
        page.screenshot(path=str(tmp_path / "console-alarm.png"))
        page.get_by_role("button", name="Acknowledge (Enter)").click()
        expect(alarm).to_contain_text("No location")  # heard, but still nowhere to send units
        expect(alarm).to_have_attribute("data-sounding", "yes")
        page.get_by_role("button", name="Place on the map").click()
        expect(page.locator("#alarm-status")).to_have_text("Click the map where the incident is")
        page.locator("#map").click(position={"x": 450, "y": 400})
        expect(alarm).to_be_hidden()
        [incident] = server.get("/api/v1/incidents")
        assert incident["location_source"] == "dispatcher"
        orders = eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["orders"])
        assert orders[0]["unit_id"] == "car-1"  # placing it sent its plan
        expect(page.locator(".new-incident")).to_have_count(0)  # that click made no new one
    finally:
        car.close()
        kiosk.close()


def test_the_kiosk_keeps_a_panic_pressed_while_the_server_is_down_across_a_reload(browser, city):
    server, tokens, _links = city
    context = browser.new_context(viewport={"width": 1024, "height": 600})
    page = context.new_page()
    open_screen(page, server, "kiosk", "kiosk-1", tokens["kiosk-1"])
    server.stop()
    expect(page.locator("#link")).to_have_text("offline")
    panic = page.get_by_role("button", name="PANIC")
    box = panic.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(2300)
    page.mouse.up()
    pressed_at = time.time()
    expect(page.locator("#message")).to_have_text(
        "Alarm kept: it goes out by itself when the link is back"
    )
    expect(page.locator("#steps li.done")).to_have_text(["Pressed"])
    page.close()  # the screen goes away with the press still in its storage
    time.sleep(1.5)

    server.start()
    again = context.new_page()
    again.goto(f"{server.url}/kiosk")  # the token and the press were kept by the browser
    expect(again.locator("#steps li.done")).to_have_text(
        ["Pressed", "Received by the centre", "Dispatched"]
    )
    [incident] = server.get("/api/v1/incidents")
    assert incident["reported_by"] == "kiosk-1"
    assert incident["created_at"] < pressed_at + 0.5  # counted at the press, not the delivery
    with_alarms = server.get("/api/v1/alarms")
    assert [a["unit_id"] for a in with_alarms] == ["kiosk-1"]  # once: no duplicate
    context.close()


def test_the_terminal_rings_until_accepted_and_its_answer_waits_out_a_server_restart(page, city):
    server, tokens, links = city
    open_screen(page, server, "terminal", "car-1", tokens["car-1"])
    links["kiosk-1"].panic()
    expect(page.locator("#summary")).to_contain_text("Panic button at City Hospital")
    expect(page.locator("body")).to_have_class(re.compile("ringing"))
    [incident] = server.get("/api/v1/incidents")
    [order] = eventually(lambda: server.get(f"/api/v1/incidents/{incident['id']}")["orders"])

    server.stop()
    expect(page.locator("#link")).to_have_text("offline")
    page.get_by_role("button", name="Accept").click()
    pressed_at = time.time()
    expect(page.locator("#state")).to_have_text("Accepted …")
    expect(page.locator("body")).not_to_have_class(re.compile("ringing"))
    page.wait_for_timeout(2000)
    server.start()
    expect(page.locator("#state")).to_have_text("Accepted")
    stored = eventually(
        lambda: next(
            o
            for o in server.get(f"/api/v1/incidents/{incident['id']}")["orders"]
            if o["order_id"] == order["order_id"] and o["accepted_at"]
        )
    )
    assert stored["accepted_at"] < pressed_at + 0.5  # the press, 2 s before it could arrive


def test_the_phone_screen_sends_its_position_only_on_duty_and_carries_a_task_through(
    browser, city, tmp_path
):
    server, _tokens, _links = city
    token = server.add_unit("vol-1", "volunteer", name="Volunteer Li")
    here = {"latitude": 35.4031, "longitude": 116.5868, "accuracy": 12}
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        geolocation=here,
        permissions=["geolocation"],
    )
    phone = context.new_page()
    try:
        open_screen(phone, server, "phone", "vol-1", token)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no side-scroll
        # installable: a manifest Chromium reads without error and a service worker; the one
        # thing in the way is the test's private (incognito-like) browser profile
        cdp = context.new_cdp_session(phone)
        assert cdp.send("Page.getAppManifest")["errors"] == []
        assert phone.evaluate("navigator.serviceWorker.ready.then((r) => !!r.active)")
        errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
        assert {e["errorId"] for e in errors} <= {"in-incognito"}
        time.sleep(1)
        assert not position_kept(server, "vol-1")  # off duty: nothing sent, nothing kept

        phone.get_by_role("button", name="Go on duty").click()
        expect(phone.locator("#duty-note")).to_have_text("On duty: your position is being sent.")
        fix = eventually(lambda: units_of(server)["vol-1"]["position"], what="the phone's fix")
        assert (fix["lat"], fix["lon"], fix["acc"]) == (35.4031, 116.5868, 12)
        assert units_of(server)["vol-1"]["online"]

        incident = server.new_incident(
            "lost_person", (35.4035, 116.5868), summary="Lost child near the east gate"
        )
        server.dispatch(incident["id"], "vol-1")
        expect(phone.locator("#summary")).to_contain_text("Lost child near the east gate")
        for button, state in (
            ("Accept", "Accepted"), ("En route", "En route"), ("On scene", "On scene"),
        ):  # fmt: skip
            target = phone.get_by_role("button", name=button)
            box = target.bounding_box()
            assert box and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844
            target.tap()
            expect(phone.locator("#state")).to_have_text(state)
        phone.screenshot(path=str(tmp_path / "phone.png"))
        phone.get_by_role("button", name="Clear").tap()
        eventually(lambda: order_state(server, incident["id"]) == "cleared", what="done")

        phone.get_by_role("button", name="Go off duty").tap()
        eventually(lambda: not units_of(server)["vol-1"]["online"], what="off duty: offline")
        kept = position_kept(server, "vol-1")
        context.set_geolocation({"latitude": 35.41, "longitude": 116.59, "accuracy": 10})
        time.sleep(6)  # longer than the phone's sending interval
        assert position_kept(server, "vol-1") == kept  # moved off duty: nothing new kept
    finally:
        context.close()


def units_of(server) -> dict[str, dict]:
    return {u["id"]: u for u in server.get("/api/v1/units")}


def order_state(server, incident_id: str) -> str:
    return server.get(f"/api/v1/incidents/{incident_id}")["orders"][0]["state"]


def position_kept(server, unit_id: str) -> int:
    with db.connection_context():
        return Position.select().where(Position.unit == unit_id).count()


def test_a_dispatcher_calls_out_the_volunteers_nearby_and_counts_their_answers(
    page, city, mosquitto, tmp_path
):
    server, _tokens, _links = city
    volunteers = {f"vol-{n}": server.add_unit(f"vol-{n}", "volunteer") for n in range(3)}
    links = {u: UnitLink(mosquitto.port, u) for u in volunteers}
    screens = {}
    try:
        for n, link in enumerate(links.values()):
            link.online()
            link.fix(35.4035 + n * 0.001, 116.5868)
        eventually(lambda: all(units_of(server)[u]["position"] for u in volunteers))
        screens = {u: Terminal(server.url, token) for u, token in volunteers.items()}
        incident = server.new_incident(
            "lost_person", (35.4040, 116.5868), priority=2, summary="Boy, 6, red coat"
        )
        page.set_viewport_size({"width": 1280, "height": 800})
        sign_in(page, server)
        page.locator("#incidents li").first.click()
        expect(page.locator("#incident-head")).to_contain_text("P2 lost person")
        page.get_by_label("Call out people nearby").select_option("2000")
        page.get_by_role("button", name="Call out").click()
        count = page.locator("#call-out-count")
        expect(count).to_have_text("3 called out · 0 accepted · 0 declined · 3 waiting")

        orders = {o["unit_id"]: o["order_id"] for o in eventually(
            lambda: [o for s in screens.values() for o in s.orders], what="the tasks"
        )}  # fmt: skip
        assert set(orders) == set(volunteers)
        assert screens["vol-0"].ack(orders["vol-0"], "accepted")["ok"]
        assert screens["vol-1"].ack(orders["vol-1"], "declined", reason="at work")["ok"]
        expect(count).to_have_text("3 called out · 1 accepted · 1 declined · 1 waiting")
        page.screenshot(path=str(tmp_path / "console-call-out.png"))
        # a decline sends no one in the volunteer's place
        assert len(server.get(f"/api/v1/incidents/{incident['id']}")["orders"]) == 3
    finally:
        for screen in screens.values():
            screen.close()
        for link in links.values():
            link.close()
