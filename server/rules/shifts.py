"""Officers on units: who may sign on where, and which stretches of a period each officer
spent on which unit. Pure: crews and shifts in, decisions and stints out.

A crew signs on at its unit's terminal (`wire/screens.py: ScreenShiftSchema`); its first
officer is in charge. An officer is on one unit at a time: one still on another unit's crew
is refused until that unit signs off (or a dispatcher ends its shift).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from server.rules.refusals import Refusal, refusal

Crew = Sequence[Mapping[str, str]]  # [{id, name}], the one in charge first


@dataclass(frozen=True)
class ShiftRecord:
    unit_id: str
    crew: tuple[tuple[str, str], ...]  # (officer id, name), the one in charge first
    started_at: float
    ended_at: float | None = None  # None: on shift now


@dataclass(frozen=True)
class Stint:
    """Part of a period one officer spent on one unit."""

    officer_id: str
    name: str
    unit_id: str
    since: float
    until: float


def crew_clash(crew: Crew, unit_id: str, crews_now: Mapping[str, Crew]) -> Refusal | None:
    """Why `crew` may not sign on to `unit_id`: one of them is on another unit's crew now."""
    for other, on_it in crews_now.items():
        if other == unit_id:
            continue  # signing on again, or a new crew taking over the unit
        theirs = {officer["id"] for officer in on_it}
        for officer in crew:
            if officer["id"] in theirs:
                return refusal("officer_on_other_unit", officer=officer["id"], unit=other)
    return None


def stints(shifts: Iterable[ShiftRecord], since: float, until: float, now: float) -> list[Stint]:
    """Each officer's time on each unit within [since, until); a shift still on lasts until
    `now`. Oldest first."""
    out: list[Stint] = []
    for shift in shifts:
        start = max(shift.started_at, since)
        end = min(shift.ended_at if shift.ended_at is not None else now, until)
        if end <= start:
            continue
        out.extend(Stint(oid, name, shift.unit_id, start, end) for oid, name in shift.crew)
    return sorted(out, key=lambda s: (s.since, s.officer_id))

