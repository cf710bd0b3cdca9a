"""What counts as arrived: a unit inside the scene's radius for a few seconds. Pure.

The radius allows for the fix's stated accuracy, capped so that a fix good to only a few
hundred metres never counts as on scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geodesy import distance_m


@dataclass(frozen=True)
class ArrivalRule:
    radius_m: float = 50.0
    dwell_s: float = 5.0
    max_accuracy_allowance_m: float = 50.0


def within(fix: dict[str, Any], lat: float, lon: float, rule: ArrivalRule) -> bool:
    allowance = min(fix.get("acc") or 0.0, rule.max_accuracy_allowance_m)
    return distance_m(fix["lat"], fix["lon"], lat, lon) - allowance <= rule.radius_m


def track_arrival(
    entered_at: float | None, fix: dict[str, Any], lat: float, lon: float, rule: ArrivalRule
) -> tuple[float | None, bool]:
    """One fix (in time order): (when the unit entered the radius, or None; arrived?).

    Arrived once a fix inside comes `dwell_s` after the first one inside; leaving resets it.
    The arrival time is when the unit entered, not when it was confirmed.
    """
    if not within(fix, lat, lon, rule):
        return None, False
    entered = fix["ts"] if entered_at is None else entered_at
    return entered, fix["ts"] - entered >= rule.dwell_s
