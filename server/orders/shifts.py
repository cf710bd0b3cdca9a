"""Shifts: a crew signs on to its unit (at the terminal) and off again, so every order, ack
and timeline entry after says who. Who may sign on where: `server/rules/shifts.py`."""

from __future__ import annotations

from typing import Any

from server.orders import dispatching
from server.orders.context import OrderBook, OrderRefused
from server.rules.refusals import refusal
from server.rules.shifts import Crew, crew_clash
from server.store import db, end_shift, record_event, start_shift


def sign_on(book: OrderBook, unit_id: str, crew: Crew, actor: str) -> list[dict[str, str]]:
    """`crew` on the unit from now (the crew before it, if any, signed off); no one: off."""
    unit = dispatching.unit_of(book, unit_id)
    if not crew:
        return sign_off(book, unit_id, actor)
    crews_now = {u.unit_id: u.crew for u in book.live.units.values() if u.crew}
    clash = crew_clash(crew, unit_id, crews_now)
    if clash is not None:
        raise OrderRefused(clash)
    now, on = book.clock(), [{"id": o["id"], "name": o["name"]} for o in crew]
    with db.atomic():
        start_shift(unit_id, on, now, actor)
        record_event(actor, "shift_started", unit_id=unit_id, crew=on, before=unit.crew or None)
    book.live.set_crew(unit_id, on)
    return on


def sign_off(book: OrderBook, unit_id: str, actor: str) -> list[Any]:
    """The unit's crew signs off (or a dispatcher ends its shift): it has no crew now."""
    unit = dispatching.unit_of(book, unit_id)
    if not unit.crew:
        raise OrderRefused(refusal("no_shift", unit=unit_id))
    with db.atomic():
        end_shift(unit_id, book.clock(), actor)
        record_event(actor, "shift_ended", unit_id=unit_id, crew=unit.crew)
    book.live.set_crew(unit_id, [])
    return []
