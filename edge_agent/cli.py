"""`fieldlink-agent --config FILE [--validate-config] [-v]`: the agent's entry point."""

from __future__ import annotations

import logging
import sys

import click

from edge_agent.config import ConfigError, configured_pins, load

log = logging.getLogger(__name__)


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
    # after the settings: a bad file is reported even where no GPIO library is installed
    from edge_agent.pins import PinError, prepare

    if validate_config:
        pins = configured_pins(settings)
        try:
            factory = prepare(settings.gpio.pin_factory, pins)
        except PinError as exc:
            click.echo(f"{config_path}: GPIO: {exc}", err=True)
            sys.exit(2)
        click.echo(
            f"{config_path}: OK (unit {settings.unit.id}, broker {settings.mqtt.url},"
            f" GPIO through {factory}, pins {', '.join(map(str, pins.values()))} free)"
        )
        return
    from edge_agent.app import Agent

    try:
        Agent(settings).run()
    except PinError as exc:
        log.critical("%s", exc)
        sys.exit(3)
