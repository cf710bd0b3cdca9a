"""Presence: whether a unit is there (online, heard from, in service) and what it is doing,
and the orders it holds sent again whenever its link or screen comes back."""

from __future__ import annotations

from typing import Any

from server.orders import alerts, dispatching, queries, views
from server.orders.context import OrderBook
from server.rules.lifecycle import silent_too_long, unit_status
from server.state.live_state import UnitState
from server.store import Unit, db, record_event


def refresh_unit(book: OrderBook, unit_id: str, now: float) -> None:
    """The unit's status again, from the orders it holds (stored when it changed)."""
    unit = book.live.get(unit_id)
    if unit is None:
        return
    states = [state for state, _ in queries.open_order_states_of_unit(unit_id)]
    status = unit_status(states, unit.online, unit.out_of_service)
    if book.live.set_status(unit_id, status, now):
        queries.set_unit_status(unit_id, status, now)


def set_out_of_service(book: OrderBook, unit_id: str, out: bool, actor: str) -> UnitState:
    unit = dispatching.unit_of(book, unit_id)
    if unit.out_of_service != out:
        book.live.set_out_of_service(unit_id, out)
        with db.atomic():
            Unit.update(out_of_service=out).where(Unit.id == unit_id).execute()
            record_event(actor, "out_of_service" if out else "in_service", unit_id=unit_id)
            refresh_unit(book, unit_id, book.clock())
    return unit


def on_unit_online(book: OrderBook, unit_id: str, online: bool, ts: float, why: str = "") -> None:
    """The agent's state message (sent on every (re)connect): open orders go again."""
    if book.live.set_online(unit_id, online):
        with db.atomic():
            Unit.update(online=online, online_since=ts).where(Unit.id == unit_id).execute()
            record_event(
                f"agent:{unit_id}",
                "online" if online else "offline",
                unit_id=unit_id,
                reason=why or None,
            )
            refresh_unit(book, unit_id, book.clock())
        if not online:
            alerts.unit_silent(book, unit_id, why)
    if online:
        book.live.heard(unit_id, book.clock())
        for order, incident in queries.open_orders(unit_id):
            book.notices.order_to_agent(unit_id, views.order_message(order, incident))


def heard(book: OrderBook, unit_id: str, at: float) -> None:
    """Any message from a unit: it is online (a position or health message says so too)."""
    book.live.heard(unit_id, at)
    unit = book.live.get(unit_id)
    if unit is not None and not unit.online:
        on_unit_online(book, unit_id, True, at)


def mark_silent_offline(book: OrderBook, now: float) -> None:
    """Units not heard from for `offline_after_s` are offline, though no will said so."""
    for unit in list(book.live.units.values()):
        if unit.online and silent_too_long(unit.last_heard, now, book.offline_after_s):
            on_unit_online(book, unit.unit_id, False, now, why="missing heartbeats")


def sync_terminal(book: OrderBook, unit_id: str, sid: str) -> dict[str, Any]:
    """A terminal (re)connected: it gets every order its unit still holds, and the answer
    carries the unit's own call for help still being handled (a kiosk shows it) and the crew
    signed on."""
    pending = queries.open_orders(unit_id)
    for order, incident in pending:
        message = {**views.order_message(order, incident), **views.way(book, order, incident)}
        book.notices.order_to_terminals(unit_id, message, sid=sid)
    unit = book.live.get(unit_id)
    crew = unit.crew if unit is not None else []
    return {"orders": len(pending), "call": views.open_call(book, unit_id), "crew": crew}


def resend_all_to_agents(book: OrderBook) -> None:
    """The broker session (re)connected: orders no agent has confirmed go out again."""
    for order, incident in queries.open_orders():
        if order.state == "sent":
            book.notices.order_to_agent(order.unit_id, views.order_message(order, incident))
