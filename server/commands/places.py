"""`fieldlink grids` and `fieldlink posts`: the city's response grids and posts, from GeoJSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from server.commands.base import cli, db_url_option, settings_from_env
from server.store import Unit, db, open_database


def _read_geojson(path: Path, parse: Any) -> Any:
    from server.rules.geo import GeoError

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
    from server.rules.geo import GridMap, parse_grids
    from server.store import save_grids

    shapes = _read_geojson(path, parse_grids)
    grid_map = GridMap(shapes)
    open_database(settings_from_env(db_url=db_url).db_url)
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
    from server.rules.geo import assign_post_grids, parse_posts
    from server.store import load_grids, save_posts

    points = _read_geojson(path, parse_posts)
    open_database(settings_from_env(db_url=db_url).db_url)
    with db.connection_context():
        points = assign_post_grids(points, load_grids())
        count = save_posts(points)
    table = Table("post", "name", "tier", "grid", title=f"{count} posts imported from {path}")
    for p in points:
        table.add_row(p.post_id, p.name, f"{p.tier_min} min", p.grid_id or "-")
    Console().print(table)
