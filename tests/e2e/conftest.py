"""What the page tests share: one headless Chromium per module, a fresh page per test, and a
small city (a car and a guard post, both placed) on a live server."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Page, sync_playwright

from harness.clients import UnitLink
from harness.waiting import eventually
from tests.e2e.screens import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: run scripts/setup.sh"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Page:
    context = browser.new_context(viewport={"width": 1024, "height": 600})
    yield context.new_page()
    context.close()


@pytest.fixture
def city(server_factory, mosquitto):
    server = server_factory()
    tokens = {
        "car-1": server.add_unit("car-1", name="Car 1"),
        "kiosk-1": server.add_unit("kiosk-1", "guard_post", name="City Hospital"),
    }
    server.start()
    links = {u: UnitLink(mosquitto.port, u) for u in tokens}
    links["car-1"].online()
    links["car-1"].fix(35.402, 116.587)
    links["kiosk-1"].fix(35.405, 116.587)
    eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")))
    yield server, tokens, links
    for link in links.values():
        link.close()
