"""`fieldlink demo` and `fieldlink simulate`: a simulated fleet, and a simulated city's day."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from server.commands.base import cli
from server.config import ASYNC_MODES


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
    from server.sim.demo import run_demo

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
    from server.rules.dispatch import POLICIES
    from server.sim.simulate import DayOptions, run_simulation

    chosen = list(POLICIES) if policies == "all" else [p.strip() for p in policies.split(",")]
    sys.exit(run_simulation(DayOptions(**options), chosen, json_out))
