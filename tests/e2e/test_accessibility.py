"""Every screen checked by axe-core (npm) in Chromium, in both languages, the console at work
(an incident's panel and an action's form, the history, the patrol report): no serious or
critical finding."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness.clients import UnitLink
from tests.e2e.screens import open_screen, sign_in

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def findings(page: Page) -> list[str]:
    """axe's serious and critical violations on the page as it stands, one line each."""
    assert AXE.exists(), "axe-core is not installed: run scripts/setup.sh"
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def screens(server_factory, mosquitto):
    server = server_factory()
    tokens = {
        "car-1": server.add_unit("car-1", name="Car 1"),
        "post-1": server.add_unit("post-1", "guard_post", name="North gate post"),
        "vol-1": server.add_unit("vol-1", "volunteer", name="Li Wei"),
    }
    server.start()
    link = UnitLink(mosquitto.port, "car-1")
    link.online()
    link.fix(35.402, 116.587)
    incident = server.new_incident("help", (35.404, 116.587), priority=2, summary="Man fell")
    server.dispatch(incident["id"], "car-1")
    yield server, tokens
    link.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_screen_has_no_serious_or_critical_accessibility_finding(screens, page, lang) -> None:
    server, tokens = screens
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, server, f"/?lang={lang}")
    page.locator("#incidents li").first.click()
    expect(page.locator("#incident-actions button").first).to_be_visible()
    # what the console shows at work: an action's form, the history found, the shift's patrol
    page.locator("#incident-head").click()
    page.keyboard.press("e")
    expect(page.locator("#action-form")).to_be_visible()
    page.locator("#h-state").select_option("any")
    page.locator("#history-form button").click()
    expect(page.locator("#history-list li")).to_have_count(1)
    page.locator("#patrol-form button").click()
    expect(page.locator("#patrol-units tbody tr")).to_have_count(1)
    problems = {"console": findings(page)}
    page.goto(f"{server.url}/dashboard?lang={lang}")
    problems["dashboard"] = findings(page)
    for screen, unit in (("terminal", "car-1"), ("kiosk", "post-1"), ("phone", "vol-1")):
        if lang == "en":
            open_screen(page, server, screen, unit, tokens[unit])
        else:
            page.goto(f"{server.url}/{screen}?token={tokens[unit]}&lang=zh")
            expect(page.locator("#link")).to_have_text("在线")
        problems[screen] = findings(page)
    page.context.clear_cookies()
    page.goto(f"{server.url}/login?lang={lang}")
    problems["login"] = findings(page)
    failing = [f"{screen}: {line}" for screen, found in problems.items() for line in found]
    assert not failing, "\n".join(failing)
