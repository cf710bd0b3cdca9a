"""What the store keeps beyond single rows: grids and posts as a whole, a period's
incidents for the figures, a unit's track, positions in batches, new units."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from typing import NamedTuple

# driver errors -> peewee's (its stubs leave the wrapper out)
from peewee import __exception_wrapper__ as translate_errors  # type: ignore[attr-defined]

from server.rules.geo import GridMap, GridShape, PostPoint
from server.rules.kpis import IncidentRecord, OrderRecord
from server.runtime import clock
from server.store.models import (
    IN_FLEET,
    UNIT_KINDS,
    Grid,
    Incident,
    Order,
    Position,
    Post,
    Unit,
    db,
)


def load_grids() -> GridMap:
    return GridMap(
        [GridShape(g.id, g.name, json.loads(g.geometry)) for g in Grid.select().order_by(Grid.id)]
    )


def save_grids(shapes: Iterable[GridShape]) -> int:
    """Replace every grid: a grid file describes the whole city."""
    rows = [{"id": g.grid_id, "name": g.name, "geometry": json.dumps(g.geometry)} for g in shapes]
    with db.atomic():
        Grid.delete().execute()
        for chunk in range(0, len(rows), 100):
            Grid.insert_many(rows[chunk : chunk + 100]).execute()
    return len(rows)


def load_posts() -> list[PostPoint]:
    return [
        PostPoint(p.id, p.name, p.tier_min, p.lat, p.lon, p.grid)
        for p in Post.select().order_by(Post.id)
    ]


def save_posts(posts: Iterable[PostPoint]) -> int:
    """Replace every response post."""
    rows = [
        {
            "id": p.post_id,
            "name": p.name,
            "tier_min": p.tier_min,
            "lat": p.lat,
            "lon": p.lon,
            "grid": p.grid_id,
        }
        for p in posts
    ]
    with db.atomic():
        Post.delete().execute()
        for chunk in range(0, len(rows), 100):
            Post.insert_many(rows[chunk : chunk + 100]).execute()
    return len(rows)


def incident_records(since: float, until: float) -> list[IncidentRecord]:
    """Incidents created in [since, until) with their orders, as the KPIs read them."""
    incidents = list(
        Incident.select().where((Incident.created_at >= since) & (Incident.created_at < until))
    )
    orders: dict[str, list[OrderRecord]] = {i.id: [] for i in incidents}
    if incidents:
        query = (
            Order.select(Order, Unit.kind)
            .join(Unit)
            .where(Order.incident.in_(list(orders)))
            .order_by(Order.sent_at)
        )
        for o in query:
            crew = tuple((c["id"], c["name"]) for c in json.loads(o.crew or "[]"))
            orders[o.incident_id].append(
                OrderRecord(o.unit_id, o.unit.kind, o.sent_at, o.accepted_at, o.on_scene_at, crew)
            )
    return [
        IncidentRecord(
            i.id,
            i.category,
            i.grid,
            i.created_at,
            i.dispatched_at,
            i.on_scene_at,
            i.resolved_at,
            i.handed_over_at,
            i.closed_at,
            i.followup_at,
            tuple(orders[i.id]),
        )
        for i in incidents
    ]


def unit_track(unit_id: str, since: float, until: float) -> list[dict]:
    """A unit's stored fixes in [since, until), oldest first."""
    query = (
        Position.select(Position.ts, Position.lat, Position.lon, Position.acc, Position.speed)
        .where((Position.unit == unit_id) & (Position.ts >= since) & (Position.ts < until))
        .order_by(Position.ts)
        .dicts()
    )
    return list(query)  # type: ignore[arg-type]  # peewee's stubs: .dicts() still yields models


POSITION_COLUMNS = (
    "unit_id",
    "ts",
    "lat",
    "lon",
    "speed",
    "heading",
    "acc",
    "alt",
    "mode",
    "received_at",
)


def insert_positions(rows: Iterable[dict]) -> int:
    """Batched insert; fixes already stored (same unit and time) are ignored.

    One prepared statement executed over the batch: building peewee queries row by row
    cost more than SQLite's own work at thousands of fixes a second.
    """
    values = [tuple(row.get(c) for c in POSITION_COLUMNS) for row in rows]
    if not values:
        return 0
    table = Position._meta.table_name
    marks = ", ".join([db.param] * len(POSITION_COLUMNS))
    sql = f"INSERT INTO {table} ({', '.join(POSITION_COLUMNS)}) VALUES ({marks}) "
    sql += "ON CONFLICT DO NOTHING"
    with db.atomic(), translate_errors:
        db.cursor().executemany(sql, values)
    return len(values)


def token_digest(token: str) -> str:
    """How a device or API token is stored: its SHA-256. Tokens are 192 random bits or more,
    so a fast hash suffices (no guessable password to stretch), and a lookup is one index."""
    return hashlib.sha256(token.encode()).hexdigest()


class NewUnit(NamedTuple):
    unit: Unit
    terminal_token: str  # shown once; only its digest is stored


def create_unit(
    unit_id: str, kind: str, grid: str = "", name: str = "", home_post: str | None = None
) -> NewUnit:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}: use one of {', '.join(UNIT_KINDS)}")
    token = secrets.token_urlsafe(24)
    unit = Unit.create(
        id=unit_id,
        kind=kind,
        grid=grid,
        name=name or unit_id,
        home_post=home_post,
        terminal_token_hash=token_digest(token),
    )
    return NewUnit(unit, token)


def by_device_token(token: str) -> Unit | None:
    """The unit a screen's device token belongs to, if it is still in the fleet."""
    return Unit.get_or_none((Unit.terminal_token_hash == token_digest(token)) & IN_FLEET)


def issue_terminal_token(unit: Unit) -> str:
    """A new device token for `unit`; the old one stops working, and the screens connected
    with it are let go within `server/web/revocation.py`'s sweep."""
    token = secrets.token_urlsafe(24)
    unit.terminal_token_hash = token_digest(token)
    unit.save(only=[Unit.terminal_token_hash])
    return token


def retire_unit(unit: Unit) -> None:
    """Out of the fleet: no credential left (a random digest keeps the column unique and
    matches no token), never recommended; the row stays for its orders and track."""
    unit.removed_at = clock.now()
    unit.terminal_token_hash = token_digest(secrets.token_urlsafe(24))
    unit.mqtt_password_hash = None
    unit.out_of_service = True
    unit.online = False
    unit.save()
