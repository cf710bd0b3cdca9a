"""`fieldlink map import`: the console's street map from the city's OpenStreetMap extract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn

from server.commands.base import cli, db_url_option, settings_from_env
from server.rules.streetmap import MapPart, area_part, place_part, way_part
from server.store import db, open_database, save_street_map


def _line(nodes: Any) -> list[list[float]]:
    return [[round(n.lon, 6), round(n.lat, 6)] for n in nodes if n.location.valid()]


def read_extract(path: Path) -> Iterator[tuple[MapPart, dict[str, Any]]]:
    """The parts of an .osm.pbf (or .osm) extract the map draws, each with its GeoJSON
    geometry: streets and waterways as lines, water as polygons (a lake drawn as a way or as
    a multipolygon), named places as points."""
    import osmium
    from osmium.osm import Area, Node, Way

    for obj in osmium.FileProcessor(str(path)).with_locations().with_areas():
        tags = {tag.k: tag.v for tag in obj.tags}
        if isinstance(obj, Area):
            if part := area_part(tags):
                polygons = [
                    [_line(outer), *(_line(inner) for inner in obj.inner_rings(outer))]
                    for outer in obj.outer_rings()
                ]
                yield part, {"type": "MultiPolygon", "coordinates": polygons}
        elif isinstance(obj, Way):
            if (part := way_part(tags)) and len(line := _line(obj.nodes)) >= 2:
                yield part, {"type": "LineString", "coordinates": line}
        elif isinstance(obj, Node) and obj.location.valid() and (part := place_part(tags)):
            point = [round(obj.location.lon, 6), round(obj.location.lat, 6)]
            yield part, {"type": "Point", "coordinates": point}


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
