"""Drive times from OSRM, asked outside the worker: a router that does not answer costs its
timeout, never the queue. A dispatcher's recommendation asks in the request; an automatic
dispatch asks in a task of its own and finishes in the worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from server.orders import OrderBook, Shortlist, dispatching
from server.rules.dispatch import DriveLeg, Recommendation
from server.runtime import metrics
from server.runtime.supervise import Tasks
from server.scale.routing import OsrmRouter, RoutingError
from server.store import Incident

log = logging.getLogger(__name__)


class DriveTimes:
    def __init__(
        self,
        router: OsrmRouter | None,
        shortlist: int,
        tasks: Tasks,
        in_worker: Callable[..., Any],
    ):
        self.router = router  # None: no OSRM, the straight line stands
        self.shortlist = shortlist
        self.tasks = tasks
        self.in_worker = in_worker

    def of(
        self, dest: tuple[float, float], recommendations: list[Recommendation]
    ) -> tuple[dict[str, DriveLeg | None], str | None]:
        """OSRM's drive times for the recommendable units, or why there are none."""
        asked = [r for r in recommendations if r.recommendable][: self.shortlist]
        if self.router is None or not asked:
            return {}, None
        try:
            legs = self.router.to_point(dest, [(r.lat, r.lon) for r in asked])
        except RoutingError as exc:
            metrics.ROUTING_FAILURES.inc()
            log.warning("drive times: %s; using straight-line estimates", exc)
            return {}, str(exc)
        return {
            r.unit_id: None if leg is None else DriveLeg(leg.duration_s, leg.distance_m)
            for r, leg in zip(asked, legs, strict=True)
        }, None

    def route_later(
        self, book: OrderBook, incident: Incident, shortlists: list[Shortlist], actor: str, why: str
    ) -> None:
        """For the order book: an automatic dispatch's drive times in a task, the choice back
        in the worker (`OrderBook.route_later`; without OSRM the book chooses at once)."""
        assert incident.lat is not None and incident.lon is not None  # fill() sends placed ones
        dest = (incident.lat, incident.lon)
        recs = [r for s in shortlists for r in s.recommendations]
        slots = [s.slot for s in shortlists]

        def ask_then_choose() -> None:
            legs, _ = self.of(dest, recs)
            try:
                self.in_worker(dispatching.finish_fill, book, incident.id, slots, legs, actor, why)
            except Exception:
                log.exception("dispatch for incident %s failed", incident.id)

        self.tasks.spawn(ask_then_choose)
