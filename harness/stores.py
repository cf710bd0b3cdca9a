"""The servers' stores: SQLite in a workdir, or PostgreSQL databases made for a test or a run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# A PostgreSQL server (postgresql://user@host:port) to run the tests' stores on; empty: SQLite
TEST_DB_URL = os.environ.get("FIELDLINK_TEST_DB_URL", "").rstrip("/")
# The local PostgreSQL that scripts/postgres.sh makes sure of, for what needs PostgreSQL
POSTGRES_URL = os.environ.get("FIELDLINK_POSTGRES_URL", "").rstrip("/")
CREATED_DATABASES: list[tuple[str, str]] = []


def database_for(workdir: Path) -> str:
    """A test's store: SQLite in its workdir, or with FIELDLINK_TEST_DB_URL its own PostgreSQL
    database (one per workdir, so a server restarted in the same test finds what it stored)."""
    if not TEST_DB_URL:
        return f"sqlite:///{workdir / 'fieldlink.db'}"
    marker = workdir / "postgresql-database"
    if not marker.exists():
        marker.write_text(new_postgres_database(TEST_DB_URL))
    return f"{TEST_DB_URL}/{marker.read_text()}"


def postgres_server_url() -> str:
    """Where to make databases: FIELDLINK_POSTGRES_URL, else the local PostgreSQL that
    scripts/postgres.sh makes sure of (it prints the URL of its role)."""
    if POSTGRES_URL:
        return POSTGRES_URL
    script = ROOT / "scripts" / "postgres.sh"
    url = subprocess.run([script], check=True, capture_output=True, text=True).stdout
    return url.strip().rstrip("/")


def connect_postgres(db_url: str, autocommit: bool = False) -> psycopg.Connection:
    """A psycopg connection to the store at `db_url` (without the server's pool options)."""
    return psycopg.connect(db_url.split("?", 1)[0], autocommit=autocommit)


def create_database(server_url: str, prefix: str) -> str:
    """A fresh, empty database on `server_url`; its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with connect_postgres(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(server_url: str, name: str) -> None:
    """Drop a database, with any connection still open to it."""
    with connect_postgres(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_postgres_database(server_url: str) -> str:
    """A fresh, empty database on `server_url`, dropped at the test session's end; its name."""
    if not server_url:
        raise RuntimeError("no PostgreSQL: run the tests with make test (scripts/postgres.sh)")
    name = create_database(server_url, "fieldlink_test")
    CREATED_DATABASES.append((server_url, name))
    return name


def drop_test_databases() -> None:
    for server_url, name in CREATED_DATABASES:
        drop_database(server_url, name)
    CREATED_DATABASES.clear()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh, empty database on `server_url` for one configuration of a run; its URL.
    Dropped afterwards."""
    name = create_database(server_url, "fieldlink_bench")
    try:
        yield f"{server_url}/{name}"
    finally:
        drop_database(server_url, name)
