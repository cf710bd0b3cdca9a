"""Crews' shifts on units as the store keeps them (`Shift`): the one open per unit, started
and ended, and read back over a period for the reports."""

from __future__ import annotations

import json

from server.rules.shifts import Crew, ShiftRecord
from server.store.models import Shift


def crews_on_shift() -> dict[str, list[dict[str, str]]]:
    """Each unit's crew signed on now."""
    return {s.unit_id: json.loads(s.crew) for s in Shift.select().where(Shift.ended_at.is_null())}


def end_shift(unit_id: str, at: float, actor: str) -> bool:
    """The unit's open shift ends at `at`; False if it had none."""
    ended = (
        Shift.update(ended_at=at, ended_by=actor)
        .where((Shift.unit == unit_id) & Shift.ended_at.is_null())
        .execute()
    )
    return bool(ended)


def start_shift(unit_id: str, crew: Crew, at: float, actor: str) -> None:
    """`crew` signs on to the unit at `at`; a crew on it before signs off then."""
    end_shift(unit_id, at, actor)
    crew_json = json.dumps([{"id": o["id"], "name": o["name"]} for o in crew])
    Shift.create(unit=unit_id, crew=crew_json, started_at=at, started_by=actor)


def shift_records(since: float, until: float) -> list[ShiftRecord]:
    """Shifts that overlap [since, until), oldest first."""
    query = (
        Shift.select()
        .where((Shift.started_at < until) & (Shift.ended_at.is_null() | (Shift.ended_at > since)))
        .order_by(Shift.started_at)
    )
    return [
        ShiftRecord(
            s.unit_id,
            tuple((o["id"], o["name"]) for o in json.loads(s.crew)),
            s.started_at,
            s.ended_at,
        )
        for s in query
    ]
