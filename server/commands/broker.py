"""`fieldlink broker`: the broker's password and ACL files, written from the store."""

from __future__ import annotations

from pathlib import Path

import click

from server.commands import provisioning
from server.commands.base import cli, db_url_option, settings_from_env
from server.config import Settings
from server.store import db, open_database


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
    settings = settings_from_env(db_url=db_url)
    account = _server_account(settings)
    open_database(settings.db_url)
    with db.connection_context():
        try:
            text = provisioning.password_file(provisioning.fleet(), account)
        except provisioning.ProvisioningError as exc:
            raise click.ClickException(str(exc)) from None
    provisioning.write_file(output, text)
    click.echo(f"wrote {output} ({len(text.splitlines())} accounts)", err=True)


@broker.command("acl")
@output_option
def broker_acl(output: Path) -> None:
    """ACL file: each unit publishes and reads only its own topics; the server all of them."""
    settings = settings_from_env()
    provisioning.write_file(
        output, provisioning.acl_file(settings.topic_root, _server_account(settings)), 0o644
    )
    click.echo(f"wrote {output}", err=True)
