"""Dispatch decisions as pure functions over plain data: which unit to send, how an order moves.

No I/O here: the order service feeds these plain values and acts on the answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8
# Kinds that respond to a call by driving or riding to it; guard posts and foot patrols
# hold their place, volunteers are not dispatched to a panic.
RESPONDING_KINDS = frozenset({"patrol_car", "motorcycle"})

# The order lifecycle: each ack may move an order forward along this path, never back.
ORDER_PATH = ("sent", "delivered", "accepted", "en_route", "on_scene", "cleared")
ACK_TARGET = {
    "received": "delivered",
    "accepted": "accepted",
    "declined": "declined",
    "en_route": "en_route",
    "on_scene": "on_scene",
    "cleared": "cleared",
}
FINAL_ORDER_STATES = frozenset({"declined", "cleared"})
# What a unit is doing while it holds an order in a given state.
UNIT_STATUS_FOR_ORDER = {
    "sent": "dispatched",
    "delivered": "dispatched",
    "accepted": "busy",
    "en_route": "en_route",
    "on_scene": "on_scene",
}


@dataclass(frozen=True)
class Candidate:
    """A unit as dispatch sees it."""

    unit_id: str
    kind: str
    lat: float
    lon: float
    available: bool = True
    online: bool = True


@dataclass(frozen=True)
class Ranked:
    unit_id: str
    distance_m: float
    online: bool = True


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def rank_units(
    lat: float, lon: float, candidates: Iterable[Candidate], exclude: frozenset[str] = frozenset()
) -> list[Ranked]:
    """Units that may respond, online ones first, each group nearest first (straight line).

    A unit may respond if it is of a responding kind, available and not excluded (the unit
    that raised the alarm, units already sent to this incident). A unit whose link is down
    still may: its order waits in its broker session and a broker outage, which makes every
    unit look offline, must not leave a panic with nobody.
    """
    ranked = [
        Ranked(c.unit_id, distance_m(lat, lon, c.lat, c.lon), c.online)
        for c in candidates
        if c.kind in RESPONDING_KINDS and c.available and c.unit_id not in exclude
    ]
    ranked.sort(key=lambda r: (not r.online, r.distance_m, r.unit_id))
    return ranked


class AckRejected(ValueError):
    """An ack that cannot apply to the order in its current state."""


def next_order_state(current: str, ack_status: str) -> str | None:
    """The state an ack moves an order to, None if it changes nothing (a repeat or a stale ack).

    Acks are idempotent: the same status twice, or a status the order has already passed,
    changes nothing. Declining after accepting, or anything after decline or clear, is rejected.
    """
    target = ACK_TARGET[ack_status]
    if target == current:
        return None
    if current in FINAL_ORDER_STATES:
        raise AckRejected(f"order is already {current}")
    if target == "declined":
        if current in ("sent", "delivered"):
            return "declined"
        raise AckRejected(f"order is already {current}; clear it instead of declining")
    if ORDER_PATH.index(target) <= ORDER_PATH.index(current):
        return None
    return target


def unit_status(open_order_states: Iterable[str]) -> str:
    """A unit's status from the states of the orders it holds: the most advanced wins."""
    status = "available"
    rank = ("available", "dispatched", "busy", "en_route", "on_scene")
    for state in open_order_states:
        candidate = UNIT_STATUS_FOR_ORDER.get(state, "available")
        if rank.index(candidate) > rank.index(status):
            status = candidate
    return status
