"""`fieldlink users`: the command centre's accounts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from server.commands.base import cli, db_url_option, operator, settings_from_env
from server.rules.roles import ROLES
from server.store import Account, db, open_database, record_event
from server.web import accounts


@cli.group()
def users() -> None:
    """Command-centre accounts: dispatchers, commanders, admins."""


def _account_change(db_url: str | None, change: Any, name: str, *args: Any) -> None:
    """Run an account change and put it in the audit trail; print what it gives (shown
    once) as JSON, or why it cannot. Consoles the change takes rights from are let go
    within seconds (`server/web/revocation.py`)."""
    open_database(settings_from_env(db_url=db_url).db_url)
    try:
        with db.connection_context(), db.atomic():
            given = change(name, *args)
            record_event(operator(), f"account_{change.__name__}", account=name)
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
    open_database(settings_from_env(db_url=db_url).db_url)
    with db.connection_context():
        rows = list(Account.select().order_by(Account.name))
    table = Table("name", "role", "since")
    for account in rows:
        table.add_row(account.name, account.role, _day(account.created_at))
    Console().print(table)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
