"""`fieldlink tracks`: how long the units' positions are kept."""

from __future__ import annotations

import click

from server.commands.base import cli, db_url_option, operator, settings_from_env
from server.runtime import clock
from server.store import Position, db, open_database, record_event

DAY_S = 86_400


@cli.group()
def tracks() -> None:
    """The units' stored positions (tracks, replays, patrol reports)."""


@tracks.command("prune")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=1),
    required=True,
    help="Delete every position whose fix is older than this many days.",
)
@db_url_option
def tracks_prune(older_than_days: int, db_url: str | None) -> None:
    """Delete old positions: a city's rule on how long it keeps where people were (run it
    daily, e.g. from a systemd timer). Incidents, orders and the audit trail stay."""
    open_database(settings_from_env(db_url=db_url).db_url)
    before = clock.now() - older_than_days * DAY_S
    with db.connection_context(), db.atomic():
        deleted = Position.delete().where(Position.ts < before).execute()
        record_event(operator(), "tracks_pruned", older_than_days=older_than_days, deleted=deleted)
    click.echo(f"deleted {deleted} positions older than {older_than_days} days", err=True)
