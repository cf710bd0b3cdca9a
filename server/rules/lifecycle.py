"""How orders, incidents and units move from state to state: pure functions over plain values.

No I/O here: the order service asks these what a change does, and refuses what they refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from server.rules.refusals import Refused, refusal

# -- orders ----------------------------------------------------------------------------
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
# Ends of an order: answered (declined, cleared) or taken back by dispatch (cancelled, and
# timed_out when nobody accepted it in time and it went to another unit).
FINAL_ORDER_STATES = frozenset({"declined", "cleared", "cancelled", "timed_out"})
ORDER_STATES = (*ORDER_PATH[:3], "declined", *ORDER_PATH[3:], "cancelled", "timed_out")
OPEN_ORDER_STATES = tuple(s for s in ORDER_STATES if s not in FINAL_ORDER_STATES)
# An order in these states still waits for its unit to accept it: the ack timeout runs.
AWAITING_ACCEPT = frozenset({"sent", "delivered"})


class LifecycleError(Refused):
    """A change that cannot apply in the current state; the text says why and what to do."""


def next_order_state(current: str, ack_status: str) -> str | None:
    """The state an ack moves an order to, None if it changes nothing (a repeat or a stale ack).

    Acks are idempotent: the same status twice, or a status the order has already passed,
    changes nothing; so does `received` for an order that has ended (an agent acks every
    message it gets, a cancel included). Declining after accepting, or anything else after
    the order has ended, is refused.
    """
    target = ACK_TARGET[ack_status]
    if target == current:
        return None
    if current in FINAL_ORDER_STATES:
        if ack_status == "received":
            return None
        raise LifecycleError(refusal("ack_passed", state=current))
    if target == "declined":
        if current in AWAITING_ACCEPT:
            return "declined"
        raise LifecycleError(refusal("decline_passed", state=current))
    if ORDER_PATH.index(target) <= ORDER_PATH.index(current):
        return None
    return target


def escalation_due(state: str, ack_deadline: float | None, now: float) -> bool:
    """An order nobody accepted by its deadline goes to the next unit."""
    return state in AWAITING_ACCEPT and ack_deadline is not None and now >= ack_deadline


# -- incidents -------------------------------------------------------------------------
INCIDENT_STATES = ("new", "dispatched", "on_scene", "resolved", "handed_over", "closed")
ACTIVE_INCIDENT_STATES = INCIDENT_STATES[:3]  # still being handled: units may yet be sent
# over for dispatch: no plan goes, no unit replaces one, nothing more is wanted
CLOSED_INCIDENT_STATES = frozenset(INCIDENT_STATES[3:])
HANDOVER_KINDS = ("scene", "station", "station_to_police_station")
# For each event, the state it moves an incident to from each state it may happen in.
# A state missing from an event's table refuses it; a state mapped to itself ignores it.
INCIDENT_EVENTS: dict[str, dict[str, str]] = {
    "order_sent": {"new": "dispatched", "dispatched": "dispatched", "on_scene": "on_scene"},
    "arrived": {
        "new": "on_scene",
        "dispatched": "on_scene",
        "on_scene": "on_scene",
        "resolved": "resolved",  # a late on-scene ack changes nothing
        "handed_over": "handed_over",
    },
    "orders_done": {"dispatched": "resolved", "on_scene": "resolved"},
    "resolve": {"new": "resolved", "dispatched": "resolved", "on_scene": "resolved"},
    # "handle first, hand over later"; a station can hand over to a police station in turn
    "hand_over": {
        "new": "handed_over",
        "dispatched": "handed_over",
        "on_scene": "handed_over",
        "resolved": "handed_over",
        "handed_over": "handed_over",
    },
    # the unit an incident is handed over to gets an order: it accepts on its own screen
    "handover_sent": {"handed_over": "handed_over"},
    "close": {"resolved": "closed", "handed_over": "closed"},
    "update": {s: s for s in INCIDENT_STATES if s != "closed"},
}
_REFUSALS = {"order_sent": "incident_no_orders", "close": "incident_not_closable"}


def next_incident_state(current: str, event: str) -> str:
    """The state `event` moves an incident in `current` to; raises LifecycleError if refused.

    `orders_done` (every order ended) only ever resolves: in any other state it is ignored.
    """
    table = INCIDENT_EVENTS[event]
    if current in table:
        return table[current]
    if event == "orders_done":
        return current
    raise LifecycleError(refusal(_REFUSALS.get(event, "incident_step"), event=event, state=current))


def incident_after_order(
    incident_state: str,
    on_scene_at: float | None,
    order_state: str,
    order_states: Iterable[str],
    now: float,
) -> tuple[str, float | None, float | None]:
    """(state, on-scene time, resolved time) of an incident after one of its orders moved
    to `order_state`; `order_states` are all its orders' states now.

    The first unit on scene puts the incident on scene. It is resolved when every order
    has ended and at least one was cleared (declined, cancelled or timed-out orders alone
    resolve nothing: units may still be sent).
    """
    state, resolved_at = incident_state, None
    if order_state == "on_scene":
        return next_incident_state(state, "arrived"), on_scene_at or now, None
    if order_state in FINAL_ORDER_STATES:
        states = set(order_states)
        if states <= FINAL_ORDER_STATES and "cleared" in states:
            state = next_incident_state(state, "orders_done")
            resolved_at = now if state != incident_state else None
    return state, on_scene_at, resolved_at


# -- units -----------------------------------------------------------------------------
UNIT_STATUSES = (
    "available",
    "dispatched",
    "en_route",
    "on_scene",
    "busy",
    "out_of_service",
    "offline",
)
# What a unit is doing while it holds an order in a given state; the most advanced wins.
UNIT_STATUS_FOR_ORDER = {
    "sent": "dispatched",
    "delivered": "dispatched",
    "accepted": "busy",
    "en_route": "en_route",
    "on_scene": "on_scene",
}
_WORK_RANK = ("available", "dispatched", "busy", "en_route", "on_scene")


def unit_status(open_order_states: Iterable[str], online: bool, out_of_service: bool) -> str:
    """A unit's status: offline while its link is down, else its work, else out of service.

    A unit with an open order shows what it does for it even if someone took it out of
    service meanwhile: the order is what dispatch must see.
    """
    if not online:
        return "offline"
    status = "available"
    for state in open_order_states:
        candidate = UNIT_STATUS_FOR_ORDER.get(state, "available")
        if _WORK_RANK.index(candidate) > _WORK_RANK.index(status):
            status = candidate
    if status == "available" and out_of_service:
        return "out_of_service"
    return status


def silent_too_long(last_heard: float | None, now: float, offline_after_s: float) -> bool:
    """Missing heartbeats: a unit not heard from for `offline_after_s` counts as offline."""
    return last_heard is not None and now - last_heard > offline_after_s


def on_scene_too_long(
    category: str, on_scene_at: float | None, now: float, limits_s: Mapping[str, float]
) -> float | None:
    """The category's limit on scene (`*` for the rest) if a unit there since `on_scene_at`
    has passed it, else None: a long stay may be a unit in trouble, or one forgotten."""
    limit = limits_s.get(category, limits_s.get("*"))
    if on_scene_at is None or limit is None or now - on_scene_at <= limit:
        return None
    return limit


# amber past 3 minutes, red past the 5-minute norm: a call waiting for a unit on scene
ARRIVAL_NORM_S = (180.0, 300.0)
ON_SCENE_AMBER = 0.75  # of the category's limit


def step_limits(
    on_scene_limits_s: Mapping[str, float], categories: Iterable[str]
) -> dict[str, object]:
    """When each step turns amber and red on the consoles, in seconds: the way to the scene
    (from the call, or the order), and the stay there (per category)."""
    on_scene = {}
    for category in (*categories, "*"):
        limit = on_scene_limits_s.get(category, on_scene_limits_s["*"])
        on_scene[category] = [round(limit * ON_SCENE_AMBER), limit]
    return {"arrival": list(ARRIVAL_NORM_S), "on_scene": on_scene}
