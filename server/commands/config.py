"""`fieldlink config`: every server setting, with its variable, default and meaning; or a check."""

from __future__ import annotations

import os
import sys

import click
from rich.console import Console
from rich.table import Table

from server.commands.base import cli


@cli.command("config")
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (for the README).")
@click.option(
    "--validate",
    is_flag=True,
    help="Check the FIELDLINK_* environment (and the plans file it names) without starting "
    "anything; exit 2 listing every problem.",
)
def config_reference(markdown: bool, validate: bool) -> None:
    """Every server setting with its environment variable, default and meaning."""
    from server.config import reference

    if validate:
        _validate()
        return
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


def _validate() -> None:
    from server.config import ConfigError, Settings
    from server.rules.plans import PlanError, load_plans

    try:
        settings = Settings.from_env()
        load_plans(settings.plans_file, settings.categories(), settings.ack_timeouts())
    except (ConfigError, PlanError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        click.echo(f"{len(problems)} problem(s) with the server's settings:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(2)
    given = sorted(name for name in os.environ if name.startswith("FIELDLINK_"))
    click.echo(
        f"OK: {len(given)} FIELDLINK_* variable(s) set"
        + (f" ({', '.join(given)})" if given else "")
        + f"; database {settings.db_url}, broker {settings.mqtt_url}"
    )
