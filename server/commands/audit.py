"""`fieldlink audit`: check the audit trail's seal, export a period of it."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from server.commands.base import cli, db_url_option, settings_from_env
from server.rules.audit_chain import SEALED_FIELDS, breaks
from server.store import audit as trail
from server.store import db, open_database


@cli.group()
def audit() -> None:
    """The audit trail: every change, login and acknowledgement, with who and when."""


@audit.command("verify")
@db_url_option
def audit_verify(db_url: str | None) -> None:
    """Check that no sealed entry was taken out, put in or changed (exit 1 if one was)."""
    open_database(settings_from_env(db_url=db_url).db_url)
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for entry in trail.sealed():
            count += 1
            yield entry

    with db.connection_context():
        found = breaks(counted())
        waiting = trail.unsealed()
    for problem in found:
        click.echo(f"BROKEN at entry {problem.seq}: {problem.problem}", err=True)
    click.echo(
        f"{count} entries sealed, {'NOT whole' if found else 'whole'};"
        f" {waiting} newer not yet sealed (a running server seals them within a second)"
    )
    sys.exit(1 if found else 0)


def _day(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a date or time like 2026-12-01 or 2026-12-01T08:00"
        ) from None


@audit.command("export")
@click.option("--since", required=True, help="Start (ISO date or time, local), included.")
@click.option("--until", required=True, help="End (ISO date or time, local), not included.")
@click.option("--format", "kind", type=click.Choice(["csv", "json"]), default="csv")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File [stdout]."
)
@db_url_option
def audit_export(
    since: str, until: str, kind: str, output: Path | None, db_url: str | None
) -> None:
    """Every entry of a period with its seal, as CSV or JSON lines."""
    start, end = _day(since), _day(until)
    open_database(settings_from_env(db_url=db_url).db_url)
    out = output.open("w", newline="") if output else sys.stdout
    columns = (*SEALED_FIELDS, "seq", "digest")
    try:
        with db.connection_context():
            writer = csv.DictWriter(out, columns) if kind == "csv" else None
            if writer:
                writer.writeheader()
            for entry in trail.between(start, end):
                if writer:
                    writer.writerow({**entry, "data": json.dumps(entry["data"])})
                else:
                    out.write(json.dumps(entry) + "\n")
    finally:
        if output:
            out.close()
