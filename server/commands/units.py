"""`fieldlink units`: provision a unit, its one-file bundle for the Pi, the list."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import click
from peewee import IntegrityError
from rich.console import Console
from rich.table import Table

from mqtt_link import BrokerAddress
from server.commands import provisioning
from server.commands.base import cli, db_url_option, operator, settings_from_env
from server.config import Settings
from server.rules.lifecycle import OPEN_ORDER_STATES
from server.store import (
    IN_FLEET,
    UNIT_KINDS,
    Order,
    Unit,
    create_unit,
    db,
    issue_terminal_token,
    open_database,
    record_event,
    retire_unit,
)

log = logging.getLogger(__name__)


@cli.group()
def units() -> None:
    """Provision units (works whether or not the server is running)."""


@units.command("add")
@click.argument("unit_id")
@click.option("--kind", type=click.Choice(UNIT_KINDS), required=True)
@click.option("--grid", default="", help="Home response grid (an id from `grids import`).")
@click.option("--post", "home_post", default=None, help="Home response post (`posts import`).")
@click.option("--name", default="", help="Display name (call sign).")
@click.option(
    "--protocol",
    type=click.Choice(("agent", "owntracks")),
    default="agent",
    help="How it reports: the edge agent (a Pi), or a phone's OwnTracks app (its"
    " configuration is written to --output and shown as a QR code to scan).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --protocol owntracks: the .otrc file to write (the app imports it).",
)
@db_url_option
def units_add(
    unit_id: str,
    kind: str,
    grid: str,
    home_post: str | None,
    name: str,
    protocol: str,
    output: Path | None,
    db_url: str | None,
) -> None:
    """Add a unit and print it as JSON, with its terminal token and broker credentials.

    The broker password is shown this once (only its hash is stored); `units bundle`
    issues a new one when the unit's config file is made. The terminal token is also the
    device id of a phone running Traccar Client (`/osmand`).
    """
    from wire.topics import valid_unit_id

    if not valid_unit_id(unit_id):
        raise click.BadParameter("use 1-64 of A-Z a-z 0-9 _ -", param_hint="UNIT_ID")
    settings = settings_from_env(db_url=db_url)
    server_user = BrokerAddress.parse(settings.mqtt_url).username
    if unit_id == server_user:
        raise click.BadParameter(
            f"{unit_id!r} is the server's broker user (FIELDLINK_MQTT_URL): pick another id",
            param_hint="UNIT_ID",
        )
    open_database(settings.db_url)
    try:
        with db.connection_context(), db.atomic():
            unit, token = create_unit(unit_id, kind, grid=grid, name=name, home_post=home_post)
            password = provisioning.issue_password(unit)
            record_event(operator(), "unit_added", unit_id=unit.id, unit_kind=kind)
    except IntegrityError:
        raise click.ClickException(
            f"unit {unit_id!r} exists already (or was removed: ids are not reused)"
        ) from None
    shown = unit_json(unit) | {
        "terminal_token": token,
        "mqtt_username": unit.id,
        "mqtt_password": password,
    }
    click.echo(json.dumps(shown, indent=2))
    if protocol == "owntracks":
        _set_up_owntracks(unit.id, password, settings, output)
    _sync_broker(settings)


def _set_up_owntracks(unit_id: str, password: str, settings: Settings, output: Path | None) -> None:
    """The phone's configuration, as a file and as the QR code the app scans."""
    import qrcode

    broker = provisioning.unit_broker_url(settings)
    config = provisioning.owntracks_config(unit_id, password, broker)
    if output is not None:
        provisioning.write_file(output, json.dumps(config, indent=2) + "\n")
        click.echo(f"wrote {output}: open it with the OwnTracks app on the phone", err=True)
    code = qrcode.QRCode(border=1)
    code.add_data(provisioning.owntracks_link(config))
    buffer = io.StringIO()
    code.print_ascii(out=buffer)
    click.echo(buffer.getvalue() + "or scan this in OwnTracks (it holds the password)", err=True)


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

    settings = settings_from_env(db_url=db_url)
    ca_source = Path(settings.unit_ca_file) if settings.unit_ca_file else None
    if ca_source is not None and not ca_source.is_file():
        raise click.ClickException(
            f"FIELDLINK_UNIT_CA_FILE={settings.unit_ca_file!r} is not a file: point it at the"
            " CA certificate that signed the broker's (see deploy/README.md)"
        )
    open_database(settings.db_url)
    with db.connection_context(), db.atomic():
        unit = _in_fleet(unit_id)
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
    _sync_broker(settings)


@units.command("token")
@click.argument("unit_id")
@click.option("--rotate", is_flag=True, help="Issue a new device token (required).")
@db_url_option
def units_token(unit_id: str, rotate: bool, db_url: str | None) -> None:
    """Issue a new device token for UNIT_ID's screens and print it: the old one stops
    working, and screens connected with it are let go within seconds."""
    if not rotate:
        raise click.UsageError(
            "only the token's digest is stored, so it cannot be shown again: --rotate issues"
            " a new one (the old one stops working at once)"
        )
    open_database(settings_from_env(db_url=db_url).db_url)
    with db.connection_context(), db.atomic():
        unit = _in_fleet(unit_id)
        token = issue_terminal_token(unit)
        record_event(operator(), "unit_token_rotated", unit_id=unit.id)
    click.echo(json.dumps({"id": unit.id, "terminal_token": token}, indent=2))


@units.command("remove")
@click.argument("unit_id")
@db_url_option
def units_remove(unit_id: str, db_url: str | None) -> None:
    """Take UNIT_ID out of the fleet: its device token and broker password stop working,
    its connected screens are let go, and it leaves the map and the recommendations. Its
    orders, alarms and track stay in the history."""
    settings = settings_from_env(db_url=db_url)
    open_database(settings.db_url)
    with db.connection_context(), db.atomic():
        unit = _in_fleet(unit_id)
        holding = [
            o.id
            for o in Order.select(Order.id).where(
                (Order.unit == unit.id) & Order.state.in_(OPEN_ORDER_STATES)
            )
        ]
        if holding:
            raise click.ClickException(
                f"unit {unit_id!r} holds open orders ({', '.join(holding)}): cancel or"
                " reassign them from the console first"
            )
        retire_unit(unit)
        record_event(operator(), "unit_removed", unit_id=unit.id)
    click.echo(f"unit {unit_id!r} removed", err=True)
    _sync_broker(settings)


def _in_fleet(unit_id: str) -> Unit:
    unit = Unit.get_or_none(Unit.id == unit_id)
    if unit is None:
        raise click.ClickException(
            f"no unit {unit_id!r}: add it first with `fieldlink units add {unit_id} --kind ...`"
        )
    if unit.removed_at is not None:
        raise click.ClickException(f"unit {unit_id!r} was removed from the fleet")
    return unit


def _sync_broker(settings: Settings) -> None:
    """The broker's files rewritten and mosquitto told, when the settings say where; else
    what to run. mosquitto drops a connected unit whose password is gone on reload."""
    if not settings.broker_password_file:
        click.echo(
            "the broker takes this change once its password file is rewritten: run"
            " `fieldlink broker passwords --output /etc/mosquitto/fieldlink/passwd`"
            " and `systemctl reload mosquitto` (or set FIELDLINK_BROKER_PASSWORD_FILE and"
            " FIELDLINK_BROKER_RELOAD to have it done)",
            err=True,
        )
        return
    try:
        done = provisioning.sync_broker(settings)
    except provisioning.ProvisioningError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(done, err=True)


@units.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_url_option
def units_list(as_json: bool, db_url: str | None) -> None:
    """List units."""
    open_database(settings_from_env(db_url=db_url).db_url)
    with db.connection_context():
        rows = [unit_json(u) for u in Unit.select().where(IN_FLEET).order_by(Unit.id)]
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
    }
