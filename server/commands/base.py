"""The `fieldlink` command group, and what its commands share."""

from __future__ import annotations

import getpass
import logging
from typing import Any

import click

from server.config import ConfigError, Settings

log = logging.getLogger(__name__)
db_url_option = click.option(
    "--db-url",
    envvar="FIELDLINK_DB_URL",
    default=None,
    help="Database URL [env FIELDLINK_DB_URL; default sqlite:///fieldlink.db].",
)


def settings_from_env(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ConfigError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise click.UsageError(
            f"{len(exc.problems)} problem(s) with the settings (`fieldlink config --validate` "
            f"checks them without starting anything):\n{lines}"
        ) from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """fieldlink: dispatch for patrol cars and guard kiosks."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def operator() -> str:
    """Who runs a command, as the audit trail names them: the machine's user."""
    return f"cli:{getpass.getuser()}"
