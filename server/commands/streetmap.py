"""`fieldlink map import`: the console's street map from the city's OpenStreetMap extract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn

from server.commands.base import cli, db_url_option, settings_from_env
from server.ingest.osm_extract import read_extract
from server.rules.streetmap import MapPart
from server.store import db, open_database, save_street_map


@cli.group("map")
def street_map() -> None:
    """The console's street map, drawn without the internet."""


@street_map.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_url_option
def map_import(path: Path, db_url: str | None) -> None:
    """Replace the street map with the streets, water and place names of an OpenStreetMap
    extract (.osm.pbf): a city's from Geofabrik or BBBike, or cut with `osmium extract`."""
    open_database(settings_from_env(db_url=db_url).db_url)

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task(f"reading {path.name}")

        def counted() -> Iterator[tuple[MapPart, dict[str, Any]]]:
            for n, item in enumerate(read_extract(path), 1):
                if n % 1000 == 0:
                    bar.update(task, description=f"reading {path.name}: {n} parts")
                yield item

        try:
            with db.connection_context():
                counts = save_street_map(counted())
        except RuntimeError as exc:  # libosmium's word for a file it cannot read
            raise click.ClickException(
                f"{path}: not a readable OpenStreetMap file: {exc}"
            ) from None
    if not counts:
        raise click.ClickException(f"{path}: no streets, water or places in it")
    click.echo(
        f"street map from {path}: {counts['street']} streets, {counts['water']} water, "
        f"{counts['place']} place names"
    )
