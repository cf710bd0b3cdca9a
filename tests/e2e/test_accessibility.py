"""Every screen checked in Chromium, in both languages, the console at work (an incident's
panel and an action's form, the history, the patrol report): axe-core (npm) finds nothing
serious or critical, and no text a person reads is in the other language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness.clients import UnitLink
from harness.waiting import eventually
from tests.e2e.screens import open_screen, sign_in
from tests.e2e.test_street_map import HELSINKI

# what the screens show as it is: ids, names, a dispatcher's words
DATA = ("car-", "Car ", "post-1", "North gate post", "vol-1", "Li Wei")
DATA += ("Man fell", "Shouting", "admin")
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


# every text a person reads or hears on the page: visible text, placeholders, titles and
# accessible names; what is marked translate="no" (a name, an id, a person's words) is data
TEXTS = """() => {
  const data = (el) => el.closest("script, style, [translate=no]") || !el.checkVisibility();
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.textContent.trim() && !data(node.parentElement)) texts.push(node.textContent.trim());
  }
  for (const el of document.body.querySelectorAll("[placeholder], [title], [aria-label]")) {
    if (data(el)) continue;
    for (const name of ["placeholder", "title", "aria-label"]) {
      if (el.getAttribute(name)) texts.push(el.getAttribute(name));
    }
  }
  return texts;
}"""
# what either language keeps: the name, the switch's bilingual name, km and the file formats
KEPT = {
    "zh": re.compile(r"fieldlink|OpenStreetMap|\bEN\b|Language|\bkm\b|\bCSV\b|\bGPX\b"),
    "en": re.compile("中文|语言"),
}
OTHER = {"zh": re.compile(r"[A-Za-z]{2,}"), "en": re.compile(r"[\u3000-\u9fff\uff00-\uffef]")}


def untranslated(page: Page, lang: str, data: tuple[str, ...]) -> list[str]:
    """The page's texts with a word of the other language, beside the data shown as it is."""
    found = []
    for text in page.evaluate(TEXTS):
        rest = KEPT[lang].sub("", text)
        for value in data:
            rest = rest.replace(value, "")
        if OTHER[lang].search(rest):
            found.append(text)
    return sorted(set(found))


@pytest.fixture
def screens(server_factory, mosquitto):
    """A console at work over the city's street map: two calls, a car diverted from one to
    the other (a reason the server wrote, in the timeline; the alert it raised), the
    terminals' units online."""
    server = server_factory()
    tokens = {
        "car-1": server.add_unit("car-1", name="Car 1"),
        "car-2": server.add_unit("car-2", name="Car 2"),
        "post-1": server.add_unit("post-1", "guard_post", name="North gate post"),
        "vol-1": server.add_unit("vol-1", "volunteer", name="Li Wei"),
    }
    assert server.command("map", "import", str(HELSINKI)).returncode == 0  # its names are data
    server.start()
    links = [UnitLink(mosquitto.port, u) for u in ("car-1", "car-2")]
    for link, lon in zip(links, (116.587, 116.589), strict=True):
        link.online()
        link.fix(35.402, lon)
    eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")[:2]))
    fell = server.new_incident("help", (35.404, 116.587), priority=2, summary="Man fell")
    shouting = server.new_incident("dispute", (35.400, 116.590), priority=3, summary="Shouting")
    server.dispatch(fell["id"], "car-1")
    server.dispatch(shouting["id"], "car-2")
    divert = {"unit_ids": ["car-2"], "divert": True}
    assert server.call("POST", f"/api/v1/incidents/{fell['id']}/orders", divert)[0] == 201
    yield server, tokens, (fell["id"], shouting["id"])
    for link in links:
        link.close()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_screen_is_accessible_and_in_one_language(screens, page, lang) -> None:
    server, tokens, incident_ids = screens
    data = (*DATA, *incident_ids)
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, server, f"/?lang={lang}")
    page.locator("#incidents li", has_text="Shouting").click()
    diverted = {"en": "diverted to incident", "zh": "已调往警情"}[lang]  # the server's reason
    expect(page.locator("#timeline")).to_contain_text(f"{diverted} {incident_ids[0]}")
    expect(page.locator("#incident-actions button").first).to_be_visible()
    # what the console shows at work: an action's form, the history found, the shift's patrol
    page.locator("#incident-head").click()
    page.keyboard.press("e")
    expect(page.locator("#action-form")).to_be_visible()
    page.locator("#h-state").select_option("any")
    page.locator("#history-form button").click()
    expect(page.locator("#history-list li")).to_have_count(2)
    page.locator("#patrol-form button").click()
    expect(page.locator("#patrol-units tbody tr")).to_have_count(2)
    problems = {"console": findings(page)}
    unworded = {"console": untranslated(page, lang, data)}
    page.goto(f"{server.url}/dashboard?lang={lang}")
    problems["dashboard"] = findings(page)
    unworded["dashboard"] = untranslated(page, lang, data)
    for screen, unit in (("terminal", "car-1"), ("kiosk", "post-1"), ("phone", "vol-1")):
        if lang == "en":
            open_screen(page, server, screen, unit, tokens[unit])
        else:
            page.goto(f"{server.url}/{screen}?token={tokens[unit]}&lang=zh")
            expect(page.locator("#link")).to_have_text("在线")
        problems[screen] = findings(page)
        unworded[screen] = untranslated(page, lang, data)
    page.context.clear_cookies()
    page.goto(f"{server.url}/login?lang={lang}")
    problems["login"] = findings(page)
    unworded["login"] = untranslated(page, lang, data)
    failing = [f"{screen}: {line}" for screen, found in problems.items() for line in found]
    assert not failing, "\n".join(failing)
    assert not any(unworded.values()), unworded
