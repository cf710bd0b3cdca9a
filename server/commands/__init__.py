"""The `fieldlink` command line: one module per command group, all on one `cli`."""

from server.commands import (
    audit,
    broker,
    config,
    places,
    serve,
    sim,
    streetmap,
    tracks,
    units,
    users,
)
from server.commands.base import cli

__all__ = [
    "audit",
    "broker",
    "cli",
    "config",
    "places",
    "serve",
    "sim",
    "streetmap",
    "tracks",
    "units",
    "users",
]
