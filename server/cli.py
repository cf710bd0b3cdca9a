"""`fieldlink` command line. Under gevent the standard library is patched before anything else."""

from __future__ import annotations

import os
import sys


def _wants_gevent(argv: list[str]) -> bool:
    mode = os.environ.get("FIELDLINK_ASYNC_MODE", "")
    for i, arg in enumerate(argv):
        if arg == "--async-mode" and i + 1 < len(argv):
            mode = argv[i + 1]
        elif arg.startswith("--async-mode="):
            mode = arg.split("=", 1)[1]
    return mode == "gevent"


def main() -> None:
    if _wants_gevent(sys.argv[1:]):
        from gevent import monkey

        monkey.patch_all()
    from server.commands import cli

    cli()
