"""A city's day of calls, as pure functions: when they come, where, and what they are.

Calls follow the daily curve command centres see: quiet before dawn, rising through the
morning, busiest in the evening. Some grids are busier than others (a station, a night-life
street), so the load is uneven, as it is in a real city. A share of the calls are guard
panics raised from the kiosks; the rest are citizens' calls the command centre enters.
`fieldlink simulate` plays the plan through the real broker and server.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

# Relative call volume by local hour, 00-23: the trough at 04-05, the peak at 20-21.
HOURLY_VOLUME = (
    3.0, 2.4, 1.9, 1.5, 1.2, 1.2, 1.6, 2.6, 3.6, 4.2, 4.5, 4.6,
    4.6, 4.5, 4.5, 4.7, 5.0, 5.4, 5.9, 6.3, 6.4, 6.0, 5.0, 3.9,
)  # fmt: skip
# (category, priority, share) of citizens' calls
CALL_MIX = (
    ("urgent", 1, 0.06),
    ("help", 2, 0.24),
    ("dispute", 2, 0.24),
    ("traffic", 3, 0.20),
    ("report", 3, 0.16),
    ("other", 4, 0.10),
)
SUMMARIES = {
    "urgent": "Assault in progress",
    "help": "Person needs help",
    "dispute": "Neighbours quarrelling",
    "traffic": "Collision, vehicles blocking the road",
    "report": "Theft reported",
    "other": "Noise complaint",
}
GRID_SPREAD = 0.6  # sigma of the log-normal busyness of a grid


@dataclass(frozen=True)
class Call:
    """One event of the day: a citizen's call at a place, or a panic at a guard post."""

    at: float  # epoch s, simulated
    kind: str  # "call" or "panic"
    grid: str  # where it happens
    category: str = ""
    priority: int = 0
    point: tuple[float, float] = (0.0, 0.0)  # share (0-1, 0-1) across the grid, for calls
    post: str = ""  # the guard post's unit id, for panics
    taking_s: float = 0.0  # the call-taker's time before the plan is sent


def per_hour(calls_per_day: float, hour: int) -> float:
    """Calls expected in one hour of the day."""
    return calls_per_day * HOURLY_VOLUME[hour] / sum(HOURLY_VOLUME)


def call_times(
    start: float, hours: float, calls_per_day: float, tz: ZoneInfo, rng: random.Random
) -> list[float]:
    """Call times in [start, start + hours) from a Poisson process following the daily curve.

    Thinning: candidates at the peak rate, each kept with the ratio of its hour's rate to the
    peak, so the count per hour follows HOURLY_VOLUME wherever the period starts.
    """
    peak = per_hour(calls_per_day, HOURLY_VOLUME.index(max(HOURLY_VOLUME))) / 3600
    end = start + hours * 3600
    times: list[float] = []
    t = start
    while peak > 0:
        t += rng.expovariate(peak)
        if t >= end:
            return times
        hour = datetime.fromtimestamp(t, tz).hour
        if rng.random() * peak <= per_hour(calls_per_day, hour) / 3600:
            times.append(t)
    return times


def grid_busyness(grids: Sequence[str], rng: random.Random) -> dict[str, float]:
    """A weight per grid: a few busy ones, most ordinary, some quiet."""
    return {g: rng.lognormvariate(0, GRID_SPREAD) for g in grids}


def day_plan(
    grids: Sequence[str],
    posts: dict[str, str],
    start: float,
    hours: float,
    calls_per_day: float,
    panic_share: float,
    tz: ZoneInfo,
    seed: int,
) -> list[Call]:
    """The period's calls, oldest first; `posts` maps guard-post unit ids to their grids.

    The same seed gives the same day, so policies are compared on the same calls.
    """
    rng = random.Random(seed)
    weights = grid_busyness(grids, rng)
    posts_in: dict[str, list[str]] = {}
    for post, grid in sorted(posts.items()):
        posts_in.setdefault(grid, []).append(post)
    categories = [c for c, _, _ in CALL_MIX]
    shares = [s for _, _, s in CALL_MIX]
    priorities = {c: p for c, p, _ in CALL_MIX}
    plan = []
    for at in call_times(start, hours, calls_per_day, tz, rng):
        grid = rng.choices(list(weights), list(weights.values()))[0]
        if posts and rng.random() < panic_share:
            grid = rng.choices(list(posts_in), [weights[g] for g in posts_in])[0]
            plan.append(Call(at, "panic", grid, post=rng.choice(posts_in[grid])))
            continue
        category = rng.choices(categories, shares)[0]
        plan.append(
            Call(
                at,
                "call",
                grid,
                category,
                priorities[category],
                (rng.random(), rng.random()),
                taking_s=rng.uniform(30, 120),
            )
        )
    return plan


def hourly_counts(plan: Sequence[Call], tz: ZoneInfo) -> list[int]:
    """Calls per local hour: how the plan follows the curve."""
    counts = [0] * 24
    for call in plan:
        counts[datetime.fromtimestamp(call.at, tz).hour] += 1
    return counts


def expected_total(start: float, hours: float, calls_per_day: float, tz: ZoneInfo) -> float:
    """Calls the curve expects in the period (whole and part hours)."""
    total, t, end = 0.0, start, start + hours * 3600
    while t < end:
        local = datetime.fromtimestamp(t, tz)
        into_hour = local.minute * 60 + local.second + local.microsecond / 1e6
        step = min(3600 - into_hour, end - t)
        total += per_hour(calls_per_day, local.hour) * step / 3600
        t += step
    return total
