"""The scenes units were sent to, watched in their fixes: inside the radius long enough is
on scene (`server/rules/arrival.py`), stamped at the time the unit got there."""

from __future__ import annotations

from server.orders import acks
from server.orders.context import OrderBook
from server.rules.arrival import track_arrival
from server.rules.lifecycle import AWAITING_ACCEPT
from server.state.live_state import Target, UnitState
from server.store import Incident, Order

WATCHED = AWAITING_ACCEPT | {"accepted", "en_route"}  # the order's states before arrival


def watch(book: OrderBook, order: Order, incident: Incident) -> None:
    unit = book.live.get(order.unit_id)
    if (
        unit is not None
        and incident.lat is not None
        and incident.lon is not None
        and order.state in WATCHED
    ):
        unit.targets[order.id] = Target(incident.lat, incident.lon, order.sent_at)


def forget(book: OrderBook, order: Order) -> None:
    unit = book.live.get(order.unit_id)
    if unit is not None:
        unit.targets.pop(order.id, None)


def on_fixes(book: OrderBook, unit: UnitState, fixes: list[dict]) -> None:
    """Fixes of a unit with a scene to reach: inside the radius long enough = on scene."""
    for order_id, target in list(unit.targets.items()):
        for fix in sorted(fixes, key=lambda f: f["ts"]):
            if fix["ts"] < target.since:
                continue
            target.entered_at, arrived = track_arrival(
                target.entered_at, fix, target.lat, target.lon, book.arrival
            )
            if arrived:
                acks.on_ack(
                    book, unit.unit_id, order_id, "on_scene", actor="arrival", at=target.entered_at
                )
                break
