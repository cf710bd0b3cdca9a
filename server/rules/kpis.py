"""The response figures a command centre reports every day, as pure functions over records.

Times come from what was stored (incident and order timestamps); nothing here reads the store.
Shares are over the incidents they can apply to, and say how many that was (`n`), so a
rate over three incidents is not mistaken for one over three thousand.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

ARRIVAL_TARGETS_S = (60, 180, 300)  # the 1/3/5-minute response circles
GROUPS = ("grid", "category", "unit_kind", "officer")


@dataclass(frozen=True)
class OrderRecord:
    unit_id: str
    unit_kind: str
    sent_at: float
    accepted_at: float | None = None
    on_scene_at: float | None = None
    crew: tuple[tuple[str, str], ...] = ()  # (officer id, name) on the unit when it was sent


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    category: str
    grid: str | None
    created_at: float
    dispatched_at: float | None = None
    on_scene_at: float | None = None
    resolved_at: float | None = None
    handed_over_at: float | None = None
    closed_at: float | None = None
    followup_at: float | None = None
    orders: tuple[OrderRecord, ...] = ()

    def first_on_scene(self) -> OrderRecord | None:
        arrived = [o for o in self.orders if o.on_scene_at is not None]
        # attrgetter: a lambda would type the key float | None, though each one here is set
        return min(arrived, key=attrgetter("on_scene_at")) if arrived else None

    def responding_kind(self) -> str | None:
        """The kind of the unit that got there first, else of the first one sent."""
        first = self.first_on_scene() or min(self.orders, key=lambda o: o.sent_at, default=None)
        return first.unit_kind if first else None

    def officers(self) -> dict[str, str]:
        """Every officer on a unit sent to it: id -> name."""
        return {oid: name for order in self.orders for oid, name in order.crew}


def durations(values: Iterable[float]) -> dict[str, float | int | None]:
    """n, mean, median and 90th percentile (nearest rank) of seconds."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "mean_s": None, "median_s": None, "p90_s": None}
    rank = max(1, -(-9 * len(ordered) // 10))  # ceil(0.9 n)
    return {
        "n": len(ordered),
        "mean_s": round(statistics.fmean(ordered), 1),
        "median_s": round(statistics.median(ordered), 1),
        "p90_s": round(ordered[rank - 1], 1),
    }


def share(hits: int, n: int) -> dict[str, float | int | None]:
    return {"n": n, "rate": round(hits / n, 4) if n else None}


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def response_kpis(incidents: Sequence[IncidentRecord], tz: ZoneInfo) -> dict[str, Any]:
    """Every figure for one set of incidents."""
    dispatched = [i for i in incidents if i.dispatched_at is not None]
    to_dispatch = [_since(i.created_at, i.dispatched_at) for i in dispatched]
    arrivals = [_since(i.dispatched_at, i.on_scene_at) for i in dispatched]
    reached = [a for a in arrivals if a is not None]
    acks = [
        _since(o.sent_at, o.accepted_at)
        for i in incidents
        for o in i.orders
        if o.accepted_at is not None
    ]
    ended = [i for i in incidents if i.resolved_at is not None or i.handed_over_at is not None]
    closed = [i for i in incidents if i.closed_at is not None]

    def same_day(i: IncidentRecord) -> bool:
        day = datetime.fromtimestamp(i.created_at, tz).date()
        return i.closed_at is not None and datetime.fromtimestamp(i.closed_at, tz).date() == day

    return {
        "incidents": len(incidents),
        "call_to_dispatch": durations(d for d in to_dispatch if d is not None),
        "dispatch_to_acknowledge": durations(a for a in acks if a is not None),
        "dispatch_to_arrival": durations(reached),
        # incidents not reached at all count as not reached in time
        "arrived_within": {
            f"{limit // 60}min": share(sum(a <= limit for a in reached), len(dispatched))
            for limit in ARRIVAL_TARGETS_S
        },
        "first_response_rate": share(len(reached), len(dispatched)),
        # handled where it happened: resolved, not handed over to a department
        "on_scene_resolution_rate": share(sum(i.handed_over_at is None for i in ended), len(ended)),
        "same_day_closure_rate": share(sum(same_day(i) for i in incidents), len(incidents)),
        "followups_done": share(sum(i.followup_at is not None for i in closed), len(closed)),
    }


# what groups an incident falls in; one sent several officers is in each of theirs
_KEYS: dict[str, Callable[[IncidentRecord], Iterable[str | None]]] = {
    "grid": lambda i: (i.grid,),
    "category": lambda i: (i.category,),
    "unit_kind": lambda i: (i.responding_kind(),),
    "officer": lambda i: i.officers() or (None,),
}


def arrival_histogram(
    incidents: Sequence[IncidentRecord], bin_s: int = 30, max_s: int = 900
) -> dict[str, Any]:
    """Dispatch-to-arrival times in `bin_s` bins up to `max_s`; later ones counted as `over`."""
    counts = [0] * (max_s // bin_s)
    over = 0
    for i in incidents:
        arrival = _since(i.dispatched_at, i.on_scene_at)
        if arrival is None:
            continue
        if arrival >= max_s:
            over += 1
        else:
            counts[int(arrival // bin_s)] += 1
    return {"bin_s": bin_s, "counts": counts, "over": over}


def daily(incidents: Sequence[IncidentRecord], tz: ZoneInfo) -> list[dict[str, Any]]:
    """Per local day: incidents, median arrival and the share reached within 5 minutes."""
    days: dict[str, list[IncidentRecord]] = defaultdict(list)
    for i in incidents:
        days[datetime.fromtimestamp(i.created_at, tz).date().isoformat()].append(i)
    out = []
    for day, group in sorted(days.items()):
        figures = response_kpis(group, tz)
        out.append(
            {
                "date": day,
                "incidents": len(group),
                "median_arrival_s": figures["dispatch_to_arrival"]["median_s"],
                "within_5min": figures["arrived_within"]["5min"]["rate"],
            }
        )
    return out


def kpis_by(
    incidents: Sequence[IncidentRecord], group_by: str | None, tz: ZoneInfo
) -> dict[str, Any]:
    """The figures for all incidents (with the arrival histogram and the daily trend), and
    per grid, category, responding unit kind or officer (with each officer's name)."""
    out: dict[str, Any] = {
        "all": response_kpis(incidents, tz),
        "arrival_histogram": arrival_histogram(incidents),
        "daily": daily(incidents, tz),
    }
    if group_by:
        groups: dict[str, list[IncidentRecord]] = defaultdict(list)
        for incident in incidents:
            for key in _KEYS[group_by](incident):
                groups[key or "none"].append(incident)
        out["groups"] = {k: response_kpis(v, tz) for k, v in sorted(groups.items())}
    if group_by == "officer":
        out["officers"] = {oid: name for i in incidents for oid, name in i.officers().items()}
    return out
