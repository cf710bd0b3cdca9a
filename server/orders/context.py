"""What every part of the order book shares: its collaborators, the few things it keeps in
memory, and how it refuses.

The book runs only in the ingest worker, so its changes are serial. Its parts (incidents,
alarms, dispatching, acks, presence, arrival watch, timers; views and queries to read) are
modules of functions over one `OrderBook`; every decision comes from `server/rules/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from server.rules.arrival import ArrivalRule
from server.rules.dispatch import Recommendation, Rules
from server.rules.geo import GridMap, PostPoint
from server.rules.plans import ResponsePlans, Slot
from server.rules.refusals import Refusal, Refused
from server.runtime import clock
from server.state.live_state import LiveState

if TYPE_CHECKING:
    from server.store import Incident


class OrderRefused(Refused):
    """A command that cannot apply; its refusal is the answer to whoever sent it.

    `status` is the HTTP status the REST API answers with (404: no such thing, 409: not now).
    """

    def __init__(self, reason: Refusal, status: int = 409):
        super().__init__(reason)
        self.status = status


class Notices(Protocol):
    """What the book tells the world (`server/notify/`): orders to a unit's agent and
    screens, changes to the consoles, how a call goes to the unit that raised it."""

    def console(self, event: str, data: Any) -> None: ...

    def order_to_agent(self, unit_id: str, order: dict[str, Any]) -> None: ...

    def order_to_terminals(
        self, unit_id: str, order: dict[str, Any], sid: str | None = None
    ) -> None: ...

    def reporter(self, unit_id: str, call: dict[str, Any]) -> None: ...

    def phone_command(self, unit_id: str, device: str, command: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Shortlist:
    """Who a plan slot would send, best first."""

    slot: Slot
    recommendations: list[Recommendation]


# Asks drive times outside the worker for an automatic dispatch and finishes it back in the
# worker (`dispatching.finish_fill`); None: the straight line, at once.
RouteLater = Callable[["OrderBook", "Incident", list[Shortlist], str, str], None]


@dataclass
class OrderBook:
    live: LiveState
    notices: Notices
    plans: ResponsePlans
    rules: Rules
    arrival: ArrivalRule
    categories: tuple[str, ...]
    offline_after_s: float
    shortlist: int = 25  # units whose drive time is asked per slot (1 without OSRM)
    coverage_reach_s: float = 900.0
    alarm_ack_s: float = 30.0
    # minutes on scene per category (`*`: the rest) before the consoles are alerted
    on_scene_limits_s: dict[str, float] = field(default_factory=lambda: {"*": 2700.0})
    clock: Callable[[], float] = clock.now
    route_later: RouteLater | None = None
    grids: GridMap = field(default_factory=lambda: GridMap([]))
    posts: dict[str, PostPoint] = field(default_factory=dict)  # where a unit at a post stands
    duty_level: str = "normal"
    # units whose own call for help has no place yet: their next fix gives it one
    unplaced_calls: set[str] = field(default_factory=set)

    def use_grids(self, grids: GridMap) -> None:
        """New incidents get their grid from these; those made before keep theirs."""
        self.grids = grids

    def use_posts(self, posts: Iterable[PostPoint]) -> None:
        """The response posts' surveyed places: a post's alarm without a fix goes there."""
        self.posts = {post.post_id: post for post in posts}

    def grid_at(self, lat: float | None, lon: float | None) -> str | None:
        return None if lat is None or lon is None else self.grids.grid_at(lat, lon)
