"""Web pages: the dispatcher console (`/`), the in-car terminal (`/terminal`), the phone's
terminal (`/phone`, an installable app), the guard post's kiosk (`/kiosk`) and the
response-figures dashboard (`/dashboard`); the console and
the dashboard need the command centre's login (`server/web/auth.py`), the unit's screens their
device token.

Browser libraries come from npm (`scripts/setup.sh` installs them into node_modules) and are
served from `/vendor/`; only their distribution folders are exposed.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Flask, abort, current_app, render_template, send_from_directory

from server.web.auth import who

# only the distribution folder of each browser library is served
VENDOR = {
    "socket.io": ("socket.io-client", "dist"),
    "leaflet": ("leaflet", "dist"),
    "chart.js": ("chart.js", "dist"),
}


def screen(template: str, **context: object) -> str:
    """A page with what every screen words from the command centre's settings: the
    categories' names in each language (read by i18n.js)."""
    names = current_app.config["FIELDLINK"].names_of_categories()
    return render_template(template, category_names=names, **context)


def console_page():
    return screen("console.html", tile_url=current_app.config["FIELDLINK"].tile_url, user=who())


def terminal_page():
    return screen("terminal.html", page="terminal")


def phone_page():
    # the terminal's page and script with the phone's duty, layout and installable app
    return screen("phone.html", page="terminal")


def phone_worker():
    """The phone app's service worker, served from the root so its scope covers /phone."""
    static = Path(current_app.static_folder or "")
    return send_from_directory(static, "phone-sw.js", mimetype="text/javascript", max_age=0)


def kiosk_page():
    return screen("kiosk.html", page="kiosk")


def dashboard_page():
    return render_template("dashboard.html")


def vendor_file(package: str, filename: str):
    if package not in VENDOR:
        abort(404)
    node_modules = current_app.config["FIELDLINK"].node_modules
    folder = Path(node_modules or Path(__file__).parents[2] / "node_modules").joinpath(
        *VENDOR[package]
    )
    if not folder.is_dir():
        abort(500, description=f"{package} is not installed: run scripts/setup.sh (npm install)")
    return send_from_directory(folder, filename)


def init_app(app: Flask) -> None:
    app.add_url_rule("/", view_func=console_page)
    app.add_url_rule("/terminal", view_func=terminal_page)
    app.add_url_rule("/kiosk", view_func=kiosk_page)
    app.add_url_rule("/phone", view_func=phone_page)
    mimetypes.add_type("application/manifest+json", ".webmanifest")
    app.add_url_rule("/phone-sw.js", view_func=phone_worker)
    app.add_url_rule("/dashboard", view_func=dashboard_page)
    app.add_url_rule("/vendor/<package>/<path:filename>", view_func=vendor_file)
