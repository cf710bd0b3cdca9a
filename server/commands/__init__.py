"""The `fieldlink` command line: one module per command group, all on one `cli`."""

from server.commands import broker, config, places, serve, sim, units, users
from server.commands.base import cli

__all__ = ["broker", "cli", "config", "places", "serve", "sim", "units", "users"]
