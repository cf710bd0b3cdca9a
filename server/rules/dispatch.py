"""Which units to send: estimated arrival and the recommendation, as pure functions.

No I/O here: the order service feeds plain values (units near the scene, nearest first) and
acts on the answers; drive times from OSRM, where there are any, come in as plain values too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from geodesy import distance_m
from server.rules.refusals import Refusal, refusal

# Kinds that respond to a call by driving or riding to it; guard posts and foot patrols
# hold their place, volunteers are not dispatched to a panic.
RESPONDING_KINDS = frozenset({"patrol_car", "motorcycle"})
# People on foot: offered for a call only when its response plan names their kind (a search,
# a crowd, a lost person in the built-in plans). Volunteers are not police: they are never
# sent to a call whose plan does not name them, whoever sends them (no violent call unless
# a plan says so).
ON_FOOT = frozenset({"foot", "volunteer"})
NOT_POLICE = frozenset({"volunteer"})
# Metres a second through city traffic, including getting going; guards and foot patrols walk.
DEFAULT_SPEEDS_MS: Mapping[str, float] = {
    "patrol_car": 11.0,
    "motorcycle": 12.5,
    "guard_post": 1.4,
    "foot": 1.4,
    "volunteer": 1.4,
}
ECHELONS = ("own_grid", "neighbour", "other")  # the reinforcement order of the grids
# How units are chosen. recommendation: earliest estimated arrival (drive times where a router
# answers), the own grid first on ties; nearest: straight-line distance, as with a map and a
# ruler; own_grid: only the incident's grid's units, earliest arrival first.
POLICIES = ("recommendation", "nearest", "own_grid")


@dataclass(frozen=True)
class EtaModel:
    """Straight line x road factor at a speed per unit kind: the estimate without a router."""

    road_factor: float = 1.4
    speeds_ms: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SPEEDS_MS))

    def eta_s(self, distance: float, kind: str) -> float:
        return distance * self.road_factor / self.speeds_ms[kind]

    def fastest_eta_s(self, distance: float, kinds: Iterable[str]) -> float:
        """No unit of `kinds` this far away can arrive sooner than this."""
        return distance * self.road_factor / max(self.speeds_ms[k] for k in kinds)


@dataclass(frozen=True)
class Candidate:
    """A unit as dispatch sees it."""

    unit_id: str
    kind: str
    lat: float
    lon: float
    status: str = "available"
    fix_ts: float = 0.0
    grid: str = ""
    name: str = ""


@dataclass(frozen=True)
class Scene:
    """Where the units are wanted: the point, its grid and the grids around it."""

    lat: float
    lon: float
    grid: str | None = None
    neighbours: frozenset[str] = frozenset()

    def echelon(self, unit_grid: str) -> str:
        if self.grid and unit_grid == self.grid:
            return "own_grid"
        return "neighbour" if unit_grid in self.neighbours else "other"


@dataclass(frozen=True)
class Rules:
    """How recommendations are made (all from settings)."""

    eta: EtaModel = field(default_factory=EtaModel)
    stale_s: float = 60.0  # a position older than this makes a unit not recommendable
    policy: str = "recommendation"  # one of POLICIES


@dataclass(frozen=True)
class Recommendation:
    unit_id: str
    kind: str
    name: str
    grid: str
    status: str
    lat: float
    lon: float
    distance_m: float
    eta_s: float
    echelon: str
    position_age_s: float
    recommendable: bool
    reason: str
    eta_source: str = "straight_line"  # or "osrm"

    def sort_key(self) -> tuple[int, int, float, str]:
        # Equal whole-second ETAs are a tie; the unit's own grid breaks it, then neighbours.
        return (round(self.eta_s), ECHELONS.index(self.echelon), self.distance_m, self.unit_id)

    def nearest_key(self) -> tuple[float, str]:
        return (self.distance_m, self.unit_id)


def _why_not(c: Candidate, age_s: float, scene: Scene, rules: Rules) -> str | None:
    if c.status != "available":
        return c.status.replace("_", " ")
    if age_s > rules.stale_s:
        return f"position {age_s:.0f} s old (limit {rules.stale_s:.0f} s)"
    if rules.policy == "own_grid" and scene.grid and c.grid != scene.grid:
        return f"not of grid {scene.grid} (own-grid policy)"
    return None


def _describe(echelon: str, distance: float, eta_s: float, source: str) -> str:
    where = {"own_grid": "own grid", "neighbour": "neighbouring grid", "other": "other grid"}
    how = "drive time from OSRM" if source == "osrm" else "straight-line estimate"
    return f"{where[echelon]}; {distance / 1000:.1f} km, {eta_s / 60:.1f} min ({how})"


def recommend(
    scene: Scene,
    nearby: Iterable[tuple[Candidate, float]],
    now: float,
    rules: Rules,
    kinds: frozenset[str] = RESPONDING_KINDS,
    exclude: frozenset[str] = frozenset(),
    limit: int = 10,
) -> list[Recommendation]:
    """Units of `kinds` that arrive first, best first, and the nearer ones that may not go.

    `nearby` yields (unit, straight-line metres) nearest first; it is read only until no
    further unit could beat the `limit`-th recommendable one, so a spatial index makes this
    cheap over thousands of units. Units that may not go (not available, stale position)
    come after, each with its reason, if they are nearer than the last one recommended:
    the dispatcher sees why the closest car was passed over.
    """
    good: list[Recommendation] = []
    passed: list[Recommendation] = []
    worst = math.inf
    nearest = rules.policy == "nearest"
    key = Recommendation.nearest_key if nearest else Recommendation.sort_key
    for c, dist in nearby:
        # `nearby` comes nearest first: past the limit, no farther unit can rank higher
        if len(good) >= limit and (nearest or rules.eta.fastest_eta_s(dist, kinds) > worst + 1):
            break
        if c.kind not in kinds or c.unit_id in exclude:
            continue
        age = max(0.0, now - c.fix_ts)
        eta = rules.eta.eta_s(dist, c.kind)
        echelon = scene.echelon(c.grid)
        why_not = _why_not(c, age, scene, rules)
        rec = Recommendation(
            c.unit_id,
            c.kind,
            c.name,
            c.grid,
            c.status,
            c.lat,
            c.lon,
            dist,
            eta,
            echelon,
            age,
            why_not is None,
            why_not or _describe(echelon, dist, eta, "straight_line"),
        )
        if why_not is None:
            good.append(rec)
            if len(good) >= limit:
                good.sort(key=key)
                del good[limit:]
                worst = good[-1].eta_s
        else:
            passed.append(rec)
    good.sort(key=key)
    cutoff = good[-1].eta_s if len(good) >= limit else math.inf
    shown = sorted((p for p in passed if p.eta_s < cutoff), key=key)
    return good + shown[:limit]


@dataclass(frozen=True)
class DriveLeg:
    """A routed drive from a unit to the scene (OSRM)."""

    duration_s: float
    distance_m: float


def with_drive_times(
    recommendations: Sequence[Recommendation], legs: Mapping[str, DriveLeg | None]
) -> list[Recommendation]:
    """Re-rank by real drive time, `legs` by unit id; None: the router found no road.

    A unit the router was not asked about keeps its straight-line estimate.
    """
    routed = []
    for rec in recommendations:
        if rec.recommendable and rec.unit_id in legs:
            leg = legs[rec.unit_id]
            if leg is None:
                rec = replace(rec, reason=rec.reason + "; no road route found")
            else:
                rec = replace(
                    rec,
                    eta_s=leg.duration_s,
                    eta_source="osrm",
                    reason=_describe(rec.echelon, leg.distance_m, leg.duration_s, "osrm"),
                )
        routed.append(rec)
    good = sorted((r for r in routed if r.recommendable), key=Recommendation.sort_key)
    return good + [r for r in routed if not r.recommendable]


def brute_force_nearby(
    lat: float, lon: float, candidates: Iterable[Candidate]
) -> list[tuple[Candidate, float]]:
    """Every candidate with its distance, nearest first: `recommend`'s input without an index."""
    pairs = [(c, distance_m(lat, lon, c.lat, c.lon)) for c in candidates]
    pairs.sort(key=lambda p: (p[1], p[0].unit_id))
    return pairs


def fill_slot(count: int, ranked: list[Recommendation]) -> tuple[list[Recommendation], int]:
    """The units a plan slot of `count` sends, first arrivals first, and how many it still
    wants (sent as soon as units are available)."""
    picks = [r for r in ranked if r.recommendable][:count]
    return picks, count - len(picks)


def dispatch_refusal(
    unit_id: str,
    status: str,
    holds_this_incident: bool,
    busy_with: str | None,
    divert: bool,
) -> Refusal | None:
    """Why a dispatcher may not send a unit, or None: it already holds an order for this
    incident, its link is down, or it is busy elsewhere (or out of service) and the
    dispatcher did not ask to divert it."""
    if holds_this_incident:
        return refusal("unit_has_this_incident", unit=unit_id)
    if status == "offline":
        return refusal("unit_offline", unit=unit_id)
    if divert:
        return None
    if busy_with is not None:
        return refusal("unit_busy", unit=unit_id, incident=busy_with)
    if status == "out_of_service":
        return refusal("unit_out_of_service", unit=unit_id)
    return None


def kinds_for_call(plan_kinds: frozenset[str]) -> frozenset[str]:
    """The kinds a dispatcher's list offers for a call: the responding kinds, and the people
    on foot its plan names."""
    return RESPONDING_KINDS | (plan_kinds & ON_FOOT)


def not_police_refusal(unit_id: str, kind: str, plan_kinds: frozenset[str]) -> Refusal | None:
    """Why a volunteer may not be sent to this call (its plan does not name volunteers)."""
    if kind in NOT_POLICE and kind not in plan_kinds:
        return refusal("volunteer_not_named", unit=unit_id, kind=kind)
    return None


def within_reach(
    scene: Scene,
    nearby: Iterable[tuple[Candidate, float]],
    now: float,
    rules: Rules,
    kinds: frozenset[str],
    radius_m: float,
) -> list[str]:
    """A call-out: every unit of `kinds` within `radius_m` of the scene that could be sent
    (available, its position fresh), nearest first; `nearby` comes nearest first."""
    reached = []
    for c, dist in nearby:
        if dist > radius_m:
            break
        if c.kind in kinds and _why_not(c, max(0.0, now - c.fix_ts), scene, rules) is None:
            reached.append(c.unit_id)
    return reached


def kinds_to_replace(unit_kind: str) -> frozenset[str]:
    """The kinds a unit's order may be handed on to: a patrol unit's to any patrol unit."""
    return RESPONDING_KINDS if unit_kind in RESPONDING_KINDS else frozenset({unit_kind})
