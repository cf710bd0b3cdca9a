"""`fieldlink-agent --config FILE [--validate-config] [-v]`: the agent's entry point."""

from __future__ import annotations

import logging
import sys

import click

from edge_agent.config import ConfigError, load


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Agent settings (TOML).",
)
@click.option(
    "--validate-config",
    is_flag=True,
    help="Check the settings, print every problem, and exit (non-zero if any).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(config_path: str, validate_config: bool, verbose: bool) -> None:
    """Run the fieldlink edge agent of one unit."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load(config_path)
    except ConfigError as exc:
        click.echo(f"{config_path}: {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(2)
    if validate_config:
        click.echo(f"{config_path}: OK (unit {settings.unit.id}, broker {settings.mqtt.url})")
        return
    from edge_agent.app import Agent  # after validation: --validate-config needs no GPIO

    Agent(settings).run()
