"""The `fieldlink` commands: server, units, users, grids, posts, broker, demo, simulate."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from peewee import IntegrityError
from rich.console import Console
from rich.table import Table

from server import accounts, provisioning
from server.config import ASYNC_MODES, ConfigError, Settings
from server.roles import ROLES
from server.store import UNIT_KINDS, Account, Unit, create_unit, db, open_database
from wire.mqtt import BrokerAddress

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
    """Serve until SIGINT/SIGTERM, then stop every stage cleanly. A setting that would lose
    alarms (`Runtime.refusal`) stops the server as SIGTERM does, and it exits with 2."""
    from server.app import create_app, socketio

    app = create_app(settings)
    runtime = app.extensions["fieldlink"]
    runtime.start()
    refusal = threading.Thread(target=_stop_when_refused, args=(runtime,), daemon=True)
    refusal.start()
    # What start-up made (modules, schemas, the app) lives as long as the process: frozen
    # out of the collector's full passes, which walked it all in ~40 ms, stalling every
    # connection, every few seconds under load. Start-up's garbage goes first, or it would
    # be kept for good.
    gc.collect()
    gc.freeze()
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
    if runtime.refusal:
        print(f"fieldlink server: {runtime.refusal}", file=sys.stderr)
        raise SystemExit(2)


def _stop_when_refused(runtime: Any) -> None:
    runtime.refused.wait()
    os.kill(os.getpid(), signal.SIGTERM)


def _serve_threaded(app: Any, settings: Settings) -> None:
    """Werkzeug's threaded server with simple-websocket, as Flask-SocketIO's threading mode
    runs it, kept here so SIGTERM can shut it down from outside a request."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, *_: Any) -> None:
            """No access log, as under gevent: a proxy in front keeps one, and formatting a
            line per request was ~2 % of the server at 200 orders/s."""

    http = make_server(settings.host, settings.port, app, threaded=True, request_handler=Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=http.shutdown).start())
    http.serve_forever()


@cli.group()
def units() -> None:
    """Provision units (works whether or not the server is running)."""


@units.command("add")
@click.argument("unit_id")
@click.option("--kind", type=click.Choice(UNIT_KINDS), required=True)
@click.option("--grid", default="", help="Home response grid (an id from `grids import`).")
@click.option("--post", "home_post", default=None, help="Home response post (`posts import`).")
@click.option("--name", default="", help="Display name (call sign).")
@db_url_option
def units_add(
    unit_id: str, kind: str, grid: str, home_post: str | None, name: str, db_url: str | None
) -> None:
    """Add a unit and print it as JSON, with its terminal token and broker credentials.

    The broker password is shown this once (only its hash is stored); `units bundle`
    issues a new one when the unit's config file is made.
    """
    from wire.topics import valid_unit_id

    if not valid_unit_id(unit_id):
        raise click.BadParameter("use 1-64 of A-Z a-z 0-9 _ -", param_hint="UNIT_ID")
    settings = _settings(db_url=db_url)
    server_user = BrokerAddress.parse(settings.mqtt_url).username
    if unit_id == server_user:
        raise click.BadParameter(
            f"{unit_id!r} is the server's broker user (FIELDLINK_MQTT_URL): pick another id",
            param_hint="UNIT_ID",
        )
    open_database(settings.db_url)
    try:
        with db.connection_context(), db.atomic():
            unit = create_unit(unit_id, kind, grid=grid, name=name, home_post=home_post)
            password = provisioning.issue_password(unit)
    except IntegrityError:
        raise click.ClickException(f"unit {unit_id!r} exists already") from None
    shown = unit_json(unit) | {"mqtt_username": unit.id, "mqtt_password": password}
    click.echo(json.dumps(shown, indent=2))
    _remind_broker_reload()


@units.command("bundle")
@click.argument("unit_id")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The agent config to write (install on the Pi as /etc/fieldlink/agent.toml).",
)
@click.option("--gpsd-host", default=None, help="gpsd host on the Pi [agent default].")
@click.option("--gpsd-port", type=int, default=None, help="gpsd port on the Pi [agent default].")
@click.option("--panic-pin", type=int, default=None, help="BCM pin of the panic button.")
@click.option("--ack-pin", type=int, default=None, help="BCM pin of the order-accept button.")
@click.option("--buzzer-pin", type=int, default=None, help="BCM pin of the buzzer.")
@click.option("--led-pin", type=int, default=None, help="BCM pin of the order LED.")
@db_url_option
def units_bundle(
    unit_id: str,
    output: Path,
    gpsd_host: str | None,
    gpsd_port: int | None,
    panic_pin: int | None,
    ack_pin: int | None,
    buzzer_pin: int | None,
    led_pin: int | None,
    db_url: str | None,
) -> None:
    """Write UNIT_ID's agent config (TOML) with a NEW broker password.

    Only the password's hash is stored, so each bundle issues a fresh one; the unit's
    previous password stops working once the broker's password file is rewritten. With
    FIELDLINK_UNIT_CA_FILE set, the CA certificate goes inline into the same file
    (mqtt.ca_pem): one file to copy to /etc/fieldlink/agent.toml on the Pi.
    """
    from edge_agent import config as agent_config

    settings = _settings(db_url=db_url)
    ca_source = Path(settings.unit_ca_file) if settings.unit_ca_file else None
    if ca_source is not None and not ca_source.is_file():
        raise click.ClickException(
            f"FIELDLINK_UNIT_CA_FILE={settings.unit_ca_file!r} is not a file: point it at the"
            " CA certificate that signed the broker's (see deploy/README.md)"
        )
    open_database(settings.db_url)
    with db.connection_context(), db.atomic():
        unit = Unit.get_or_none(Unit.id == unit_id)
        if unit is None:
            raise click.ClickException(
                f"no unit {unit_id!r}: add it first with `fieldlink units add {unit_id} --kind ...`"
            )
        url = provisioning.unit_broker_url(settings)
        if url.startswith("mqtt://"):
            log.warning("units reach the broker without TLS (%s): passwords travel in clear", url)
        # gpsd and the panic pin are written even at the agent's defaults: the technician
        # wiring the Pi checks them in this file; optional signal pins only when given
        agent_default = {(s, k): d for s, k, d, _doc in agent_config.reference()}
        password = provisioning.issue_password(unit)
        values: dict[str, dict[str, Any]] = {
            "unit": {"id": unit.id, "kind": unit.kind},
            "mqtt": {
                "url": provisioning.with_credentials(url, unit.id, password),
                "ca_pem": ca_source.read_text() if ca_source is not None else None,
                "topic_root": settings.topic_root,
            },
            "gpsd": {
                "host": gpsd_host or agent_default[("gpsd", "host")],
                "port": gpsd_port or agent_default[("gpsd", "port")],
            },
            "panic": {"pin": agent_default[("panic", "pin")] if panic_pin is None else panic_pin},
            "signals": {"ack_pin": ack_pin, "buzzer_pin": buzzer_pin, "led_pin": led_pin},
        }
        text = provisioning.agent_bundle(values, agent_config.reference())
        provisioning.write_file(output, text)
        try:
            # the file alone, as the Pi will read it: this server's FIELDLINK_* must not count
            agent_config.load(output, env={})
        except agent_config.ConfigError as exc:
            output.unlink()
            # leaving the block by an exception rolls the new password back
            raise click.ClickException(f"the agent would refuse this config:\n{exc}") from None
    click.echo(f"wrote {output} for unit {unit.id} ({url})", err=True)
    _remind_broker_reload()


def _remind_broker_reload() -> None:
    click.echo(
        "the broker admits this password once its password file is rewritten: run"
        " `fieldlink broker passwords --output /etc/mosquitto/fieldlink/passwd`"
        " and `systemctl reload mosquitto`",
        err=True,
    )


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


@cli.group()
def users() -> None:
    """Command-centre accounts: dispatchers, commanders, admins."""


def _account_change(db_url: str | None, change: Any, *args: Any) -> None:
    """Run an account change; print what it gives (shown once) as JSON, or why it cannot."""
    open_database(_settings(db_url=db_url).db_url)
    try:
        with db.connection_context(), db.atomic():
            given = change(*args)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    if given is not None:
        click.echo(json.dumps(given.public(), indent=2))


def _password(ask: bool) -> str | None:
    if not ask:
        return None  # one is made up and printed
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option(
    "--ask-password", is_flag=True, help="Type the web login's password (else one is made up)."
)
@db_url_option
def users_add(name: str, role: str, ask_password: bool, db_url: str | None) -> None:
    """Add an account; prints its API token (Bearer) and web password, shown only now."""
    _account_change(db_url, accounts.add, name, role, _password(ask_password))


@users.command("password")
@click.argument("name")
@click.option("--ask-password", is_flag=True, help="Type the password (else one is made up).")
@db_url_option
def users_password(name: str, ask_password: bool, db_url: str | None) -> None:
    """Set a new web password; the account's open sessions end."""
    _account_change(db_url, accounts.new_password, name, _password(ask_password))


@users.command("token")
@click.argument("name")
@db_url_option
def users_token(name: str, db_url: str | None) -> None:
    """Issue a new API token; the old one stops working."""
    _account_change(db_url, accounts.new_token, name)


@users.command("remove")
@click.argument("name")
@db_url_option
def users_remove(name: str, db_url: str | None) -> None:
    """Remove an account: its token and sessions stop working."""
    _account_change(db_url, accounts.remove, name)
    click.echo(f"account {name!r} removed", err=True)


@users.command("list")
@db_url_option
def users_list(db_url: str | None) -> None:
    """List accounts and their roles."""
    open_database(_settings(db_url=db_url).db_url)
    with db.connection_context():
        rows = list(Account.select().order_by(Account.name))
    table = Table("name", "role", "since")
    for account in rows:
        table.add_row(account.name, account.role, _day(account.created_at))
    Console().print(table)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _read_geojson(path: Path, parse: Any) -> Any:
    from server.geo import GeoError

    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        if isinstance(exc, GeoError):
            raise click.ClickException(f"{path}: {exc}") from None
        raise click.ClickException(f"{path}: not a readable GeoJSON file: {exc}") from None


@cli.group()
def grids() -> None:
    """Response grids: GeoJSON polygons, one per grid."""


@grids.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_url_option
def grids_import(path: Path, db_url: str | None) -> None:
    """Replace every grid with the polygons of a GeoJSON FeatureCollection.

    Each feature needs `properties.id` (the grid id units are given with `--grid`) and may
    have `properties.name`.
    """
    from server.geo import GridMap, parse_grids
    from server.store import save_grids

    shapes = _read_geojson(path, parse_grids)
    grid_map = GridMap(shapes)
    open_database(_settings(db_url=db_url).db_url)
    with db.connection_context():
        count = save_grids(shapes)
        known = {u.grid for u in Unit.select(Unit.grid)} - {""}
    table = Table("grid", "name", "neighbours", title=f"{count} grids imported from {path}")
    for g in shapes:
        table.add_row(g.grid_id, g.name, ", ".join(sorted(grid_map.neighbours(g.grid_id))))
    Console().print(table)
    orphans = sorted(known - set(grid_map.ids()))
    if orphans:
        click.echo(
            f"warning: units have home grids not in the file: {', '.join(orphans)}", err=True
        )
    click.echo(
        "note: a running server takes new grids at its next start; PUT /api/v1/grids applies"
        " them at once",
        err=True,
    )


@cli.group()
def posts() -> None:
    """1/3/5-minute response posts: GeoJSON points."""


@posts.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_url_option
def posts_import(path: Path, db_url: str | None) -> None:
    """Replace every response post with the points of a GeoJSON FeatureCollection.

    Each feature needs `properties.id` and `properties.tier_min` (1, 3 or 5); a post without
    `properties.grid` gets the grid it lies in.
    """
    from server.geo import assign_post_grids, parse_posts
    from server.store import load_grids, save_posts

    points = _read_geojson(path, parse_posts)
    open_database(_settings(db_url=db_url).db_url)
    with db.connection_context():
        points = assign_post_grids(points, load_grids())
        count = save_posts(points)
    table = Table("post", "name", "tier", "grid", title=f"{count} posts imported from {path}")
    for p in points:
        table.add_row(p.post_id, p.name, f"{p.tier_min} min", p.grid_id or "-")
    Console().print(table)


@cli.group()
def broker() -> None:
    """Write mosquitto's password and ACL files for the locked-down broker."""


output_option = click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write (replaced atomically; mosquitto reads it on start and on SIGHUP).",
)


def _server_account(settings: Settings) -> provisioning.ServerAccount:
    try:
        return provisioning.ServerAccount.from_settings(settings)
    except provisioning.ProvisioningError as exc:
        raise click.UsageError(str(exc)) from None


@broker.command("passwords")
@output_option
@db_url_option
def broker_passwords(output: Path, db_url: str | None) -> None:
    """Password file: the server's account (user:password of FIELDLINK_MQTT_URL) and every
    unit with a broker password."""
    settings = _settings(db_url=db_url)
    account = _server_account(settings)
    open_database(settings.db_url)
    with db.connection_context():
        try:
            text = provisioning.password_file(Unit.select().order_by(Unit.id), account)
        except provisioning.ProvisioningError as exc:
            raise click.ClickException(str(exc)) from None
    provisioning.write_file(output, text)
    click.echo(f"wrote {output} ({len(text.splitlines())} accounts)", err=True)


@broker.command("acl")
@output_option
def broker_acl(output: Path) -> None:
    """ACL file: each unit publishes and reads only its own topics; the server all of them."""
    settings = _settings()
    provisioning.write_file(
        output, provisioning.acl_file(settings.topic_root, _server_account(settings)), 0o644
    )
    click.echo(f"wrote {output}", err=True)


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


@cli.command()
@click.option("--grids", type=int, default=51, show_default=True, help="Response grids.")
@click.option("--cars-per-grid", type=int, default=5, show_default=True, help="Patrol cars a grid.")
@click.option("--posts", type=int, default=200, show_default=True, help="Guard posts (kiosks).")
@click.option(
    "--start", default="00:00", show_default=True, help="Local time of today the period starts."
)
@click.option("--hours", type=float, default=24.0, show_default=True, help="Simulated hours.")
@click.option(
    "--speedup", type=float, default=20.0, show_default=True, help="Simulated seconds per second."
)
@click.option(
    "--calls-per-day", type=float, default=1200.0, show_default=True, help="Calls in a whole day."
)
@click.option(
    "--panic-share", type=float, default=0.1, show_default=True, help="Share that are panics."
)
@click.option(
    "--policy",
    "policies",
    default="all",
    show_default=True,
    help="Dispatch policy: recommendation, nearest, own_grid, a comma-separated list, or all.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="The same seed, the same day.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every figure of every run to this file.",
)
@click.option("--async-mode", type=click.Choice(ASYNC_MODES), default=None)
def simulate(policies: str, json_out: Path | None, **options: Any) -> None:
    """A city's day through the real broker and server, faster than life; prints its figures
    and compares dispatch policies on the same calls."""
    from server.dispatch import POLICIES
    from server.simulate import DayOptions, run_simulation

    chosen = list(POLICIES) if policies == "all" else [p.strip() for p in policies.split(",")]
    sys.exit(run_simulation(DayOptions(**options), chosen, json_out))


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
