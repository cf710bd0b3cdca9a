"""Pages in a real headless Chromium: how a test opens the command centre's pages and a
unit's own screens."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from harness.server import ADMIN, ADMIN_PASSWORD

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def sign_in(page: Page, server, path: str = "/?lang=en") -> None:
    """A command-centre page: the login comes first, then the page asked for."""
    page.goto(f"{server.url}{path}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=name]", ADMIN)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(f"{server.url}{path}")


def open_screen(page: Page, server, screen: str, unit_id: str, token: str) -> None:
    """A unit's own screen (terminal or kiosk), in English, once it is online."""
    page.goto(f"{server.url}/{screen}?token={token}&lang=en")
    expect(page.locator("#link")).to_have_text("online")
    expect(page.locator("#unit")).to_have_text(unit_id)
