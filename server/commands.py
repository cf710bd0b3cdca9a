"""The `fieldlink` commands: server, units, demo."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click
from peewee import IntegrityError
from rich.console import Console
from rich.table import Table

from server.config import ASYNC_MODES, ConfigError, Settings
from server.store import UNIT_KINDS, Unit, create_unit, db, open_database

log = logging.getLogger(__name__)
db_url_option = click.option(
    "--db-url",
    envvar="FIELDLINK_DB_URL",
    default=None,
    help="Database URL [env FIELDLINK_DB_URL; default sqlite:///fieldlink.db].",
)


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """fieldlink: dispatch for patrol cars and guard kiosks."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@click.option("--host", default=None, help="Listen address [env FIELDLINK_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [env FIELDLINK_PORT; 8080].")
@click.option("--mqtt-url", default=None, help="Broker URL [env FIELDLINK_MQTT_URL].")
@db_url_option
@click.option(
    "--async-mode",
    type=click.Choice(ASYNC_MODES),
    default=None,
    help="Socket.IO async mode [env FIELDLINK_ASYNC_MODE].",
)
def server(**options: Any) -> None:
    """Run the server: MQTT ingest, dispatch, REST API and Socket.IO."""
    run_server(_settings(**options))


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then stop every stage cleanly."""
    from server.app import create_app, socketio

    app = create_app(settings)
    runtime = app.extensions["fieldlink"]
    runtime.start()
    log.info("serving on http://%s:%s (%s)", settings.host, settings.port, settings.async_mode)
    try:
        if settings.async_mode == "gevent":
            signal.signal(signal.SIGTERM, lambda *_: socketio.stop())
            socketio.run(app, host=settings.host, port=settings.port, log_output=False)
        else:
            _serve_threaded(app, settings)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()


def _serve_threaded(app: Any, settings: Settings) -> None:
    """Werkzeug's threaded server with simple-websocket, as Flask-SocketIO's threading mode
    runs it, kept here so SIGTERM can shut it down from outside a request."""
    import threading

    from werkzeug.serving import make_server

    http = make_server(settings.host, settings.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=http.shutdown).start())
    http.serve_forever()


@cli.group()
def units() -> None:
    """Provision units (works whether or not the server is running)."""


@units.command("add")
@click.argument("unit_id")
@click.option("--kind", type=click.Choice(UNIT_KINDS), required=True)
@click.option("--grid", default="", help="Home response grid.")
@click.option("--name", default="", help="Display name (call sign).")
@db_url_option
def units_add(unit_id: str, kind: str, grid: str, name: str, db_url: str | None) -> None:
    """Add a unit and print it as JSON, with its terminal token."""
    from wire.topics import valid_unit_id

    if not valid_unit_id(unit_id):
        raise click.BadParameter("use 1-64 of A-Z a-z 0-9 _ -", param_hint="UNIT_ID")
    open_database(_settings(db_url=db_url).db_url)
    try:
        with db.connection_context():
            unit = create_unit(unit_id, kind, grid=grid, name=name)
    except IntegrityError:
        raise click.ClickException(f"unit {unit_id!r} exists already") from None
    click.echo(json.dumps(unit_json(unit), indent=2))


@units.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_url_option
def units_list(as_json: bool, db_url: str | None) -> None:
    """List units."""
    open_database(_settings(db_url=db_url).db_url)
    with db.connection_context():
        rows = [unit_json(u) for u in Unit.select().order_by(Unit.id)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "kind", "name", "grid", "status", "online")
    for r in rows:
        table.add_row(r["id"], r["kind"], r["name"], r["grid"], r["status"], str(r["online"]))
    Console().print(table)


def unit_json(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.id,
        "kind": unit.kind,
        "name": unit.name,
        "grid": unit.grid,
        "status": unit.status,
        "online": unit.online,
        "terminal_token": unit.terminal_token,
    }


@cli.command()
@click.option("--port", type=int, default=None, help="HTTP port (default: a free port).")
@click.option("--cars", type=int, default=20, show_default=True, help="Simulated patrol cars.")
@click.option("--kiosks", type=int, default=5, show_default=True, help="Simulated guard kiosks.")
@click.option(
    "--panic-every",
    type=float,
    default=45.0,
    show_default=True,
    help="Mean seconds between simulated panics.",
)
@click.option("--async-mode", type=click.Choice(ASYNC_MODES), default=None)
def demo(**options: Any) -> None:
    """Server, broker and a simulated fleet in one go; prints the console URL."""
    from server.demo import run_demo

    sys.exit(run_demo(**options))


@cli.command("config")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (for the README).")
def config_reference(markdown: bool) -> None:
    """Every server setting with its environment variable, default and meaning."""
    from server.config import reference

    rows = [(var, repr(default), doc) for var, default, doc in reference()]
    if markdown:
        click.echo("| variable | default | meaning |\n|---|---|---|")
        for var, default, doc in rows:
            click.echo(f"| `{var}` | `{default}` | {doc} |")
        return
    table = Table("variable", "default", "meaning")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
