"""Live state at start-up: every unit, its crew on shift and its latest fix from the store,
so a restart keeps the map."""

from __future__ import annotations

from peewee import fn

from server.runtime import clock
from server.state.live_state import LiveState, UnitState
from server.store import IN_FLEET, Position, Unit, crews_on_shift, db

FIX_FIELDS = ("ts", "lat", "lon", "speed", "heading", "acc", "alt", "mode")


def load_live_state(live: LiveState) -> None:
    now = clock.now()
    with db.connection_context():
        crews = crews_on_shift()
        for row in Unit.select().where(IN_FLEET):
            # a unit online before the restart gets the full time to be heard
            last_heard = now if row.online else None
            live.add(
                UnitState.from_row(
                    row, online=row.online, last_heard=last_heard, crew=crews.get(row.id, [])
                )
            )
        latest = Position.select(Position.unit, fn.MAX(Position.ts).alias("ts")).group_by(
            Position.unit
        )
        query = Position.select().join(
            latest, on=((Position.unit == latest.c.unit_id) & (Position.ts == latest.c.ts))
        )
        for pos in query:
            unit = live.get(pos.unit_id)
            if unit is None:
                continue  # removed from the fleet; its track stays in the store
            unit.fix = {k: getattr(pos, k) for k in FIX_FIELDS if getattr(pos, k) is not None}
            live.add(unit)  # into the spatial index
