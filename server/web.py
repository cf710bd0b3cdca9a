"""Web pages: the dispatcher console (`/`) and the in-car terminal (`/terminal`).

Browser libraries come from npm (`scripts/setup.sh` installs them into node_modules) and are
served from `/vendor/`; only their distribution folders are exposed.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, abort, render_template, send_from_directory

NODE_MODULES = Path(
    os.environ.get("FIELDLINK_NODE_MODULES", Path(__file__).parents[1] / "node_modules")
)
VENDOR = {
    "socket.io": NODE_MODULES / "socket.io-client" / "dist",
    "leaflet": NODE_MODULES / "leaflet" / "dist",
}


def console_page():
    return render_template("console.html", tile_url=os.environ.get("FIELDLINK_TILE_URL", ""))


def terminal_page():
    return render_template("terminal.html")


def vendor_file(package: str, filename: str):
    folder = VENDOR.get(package)
    if folder is None:
        abort(404)
    if not folder.is_dir():
        abort(500, description=f"{package} is not installed: run scripts/setup.sh (npm install)")
    return send_from_directory(folder, filename)


def init_app(app: Flask) -> None:
    app.add_url_rule("/", view_func=console_page)
    app.add_url_rule("/terminal", view_func=terminal_page)
    app.add_url_rule("/vendor/<package>/<path:filename>", view_func=vendor_file)
