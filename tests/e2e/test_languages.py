"""What the server writes reaches a Chinese screen in Chinese: the summary of a call a panic
raised, on the car's terminal and on the console, and a refusal, worded from its code and
values; every refusal the server has, the screens can word."""

from __future__ import annotations

from playwright.sync_api import expect

from server.rules.refusals import WORDING
from tests.e2e.screens import sign_in


def test_a_panic_s_summary_and_a_refusal_are_chinese_on_chinese_screens(page, browser, city):
    server, tokens, links = city
    page.goto(f"{server.url}/terminal?token={tokens['car-1']}&lang=zh")
    expect(page.locator("#link")).to_have_text("在线")
    links["kiosk-1"].panic()
    expect(page.locator("#summary")).to_have_text("City Hospital 按下紧急按钮")

    console = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(console, server, "/?lang=zh")
    call = console.locator("#incidents li").first
    expect(call).to_contain_text("City Hospital 按下紧急按钮")
    call.click()
    console.locator("#incident-head").click()
    console.keyboard.press("e")
    form = console.locator("#action-form")
    expect(form).to_be_visible()
    # meanwhile another dispatcher finishes the call: this one's edit comes too late
    [incident] = server.get("/api/v1/incidents")
    for action, body in (("resolve", {}), ("close", {"disposition": "false alarm"})):
        assert server.call("POST", f"/api/v1/incidents/{incident['id']}/{action}", body)[0] == 200
    form.get_by_role("button", name="确定").click()
    expect(console.locator("#action-status")).to_have_text(
        "未完成\uff1a此警情为「已结案」\uff0c不能更新"
    )

    worded = console.evaluate("Object.keys(window.fieldlinkSaid.zh.refusals)")
    assert sorted(worded) == sorted(WORDING)  # none falls back to the English


def test_a_category_the_centre_named_reads_in_each_screen_s_language(page, server_factory):
    server = server_factory(incident_categories="fire,help", category_names="fire=Fire/火警")
    token = server.add_unit("car-1", name="Car 1")
    server.start()
    incident = server.new_incident("fire", (35.404, 116.587), priority=2)
    sign_in(page, server, "/?lang=zh")
    expect(page.locator("#incidents li").first).to_contain_text("P2 火警")
    page.locator("#lang").click()
    expect(page.locator("#incidents li").first).to_contain_text("P2 Fire")

    sent = server.call(
        "POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": ["car-1"]}
    )
    assert sent[0] == 201, sent
    page.goto(f"{server.url}/terminal?token={token}&lang=zh")
    expect(page.locator("#category")).to_have_text("火警")
