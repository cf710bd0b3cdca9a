"""Patrol quality from a unit's track: distance driven, moving and stationary time, time in
its own grid, and long stops. Pure: fixes in, a report out.

A parked car's GPS wanders by metres; summed naively that is kilometres a shift. Without the
receiver's speed, distance is counted from an anchor that moves only when the unit is
clearly elsewhere (further than the jitter allowance plus the fix's own accuracy), and a fix
implying an impossible speed is dropped as an outlier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from geodesy import distance_m
from server.rules.shifts import Stint

# the kinds whose shift is a patrol (a guard post stands; a volunteer helps when called)
PATROLLING = ("patrol_car", "motorcycle", "foot")


@dataclass(frozen=True)
class PatrolRules:
    jitter_m: float = 10.0  # movement under this (or the fix's accuracy) is GPS noise
    max_accuracy_m: float = 50.0  # a worse fix is not trusted for distance
    moving_ms: float = 1.0  # slower than this between fixes counts as stationary
    max_speed_ms: float = 70.0  # faster implies a bad fix
    gap_s: float = 300.0  # a silence longer than this is no data, neither moving nor still
    stop_radius_m: float = 50.0
    stop_min_s: float = 300.0  # a stop this long is reported


@dataclass
class PatrolReport:
    fixes: int = 0
    outliers: int = 0
    distance_m: float = 0.0
    moving_s: float = 0.0
    stationary_s: float = 0.0
    no_data_s: float = 0.0
    in_home_grid_s: float = 0.0
    stops: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        covered = self.moving_s + self.stationary_s
        return {
            "fixes": self.fixes,
            "outliers": self.outliers,
            "km": round(self.distance_m / 1000, 3),
            "moving_s": round(self.moving_s),
            "stationary_s": round(self.stationary_s),
            "no_data_s": round(self.no_data_s),
            "in_home_grid_s": round(self.in_home_grid_s),
            "in_home_grid_share": round(self.in_home_grid_s / covered, 4) if covered else None,
            "stops": self.stops,
        }


def patrol_report(
    fixes: Sequence[dict[str, Any]],
    grid_at: Callable[[float, float], str | None],
    home_grid: str | None,
    rules: PatrolRules | None = None,
) -> PatrolReport:
    """The report for `fixes` (dicts with ts, lat, lon, optional acc and speed), any order.

    With the receiver's speed over ground (Doppler, steady when parked) a step counts as
    driven when that speed says moving; without it, from the anchor as described above.
    """
    rules = rules or PatrolRules()
    report = PatrolReport()
    track = sorted(fixes, key=lambda f: f["ts"])
    if not track:
        return report
    prev = anchor = stop = track[0]
    settled = prev["ts"]  # time before this is classified moving or stationary
    report.fixes = 1
    for fix in track[1:]:
        dt = fix["ts"] - prev["ts"]
        step = distance_m(prev["lat"], prev["lon"], fix["lat"], fix["lon"])
        if dt <= 0 or step / dt > rules.max_speed_ms:
            report.outliers += dt > 0
            continue
        report.fixes += 1
        trusted = (fix.get("acc") or 0.0) <= rules.max_accuracy_m
        if dt > rules.gap_s:
            report.stationary_s += prev["ts"] - settled
            report.no_data_s += dt
            anchor, settled = fix, fix["ts"]
        else:
            if home_grid is not None and grid_at(prev["lat"], prev["lon"]) == home_grid:
                report.in_home_grid_s += dt
            if fix.get("speed") is not None:
                moving = fix["speed"] >= rules.moving_ms
                report.moving_s += dt if moving else 0.0
                report.stationary_s += 0.0 if moving else dt
                report.distance_m += step if moving and trusted else 0.0
                anchor, settled = fix, fix["ts"]
            else:
                allowance = rules.jitter_m + min(fix.get("acc") or 0.0, rules.max_accuracy_m)
                moved = distance_m(anchor["lat"], anchor["lon"], fix["lat"], fix["lon"])
                if moved > allowance and trusted:
                    span = fix["ts"] - settled
                    if moved / span >= rules.moving_ms:
                        report.moving_s += span
                    else:
                        report.stationary_s += span
                    report.distance_m += moved
                    anchor, settled = fix, fix["ts"]
        if distance_m(stop["lat"], stop["lon"], fix["lat"], fix["lon"]) > rules.stop_radius_m:
            _end_stop(report, stop, prev, rules)
            stop = fix
        prev = fix
    report.stationary_s += prev["ts"] - settled
    _end_stop(report, stop, prev, rules)
    return report


def _end_stop(
    report: PatrolReport, start: dict[str, Any], end: dict[str, Any], rules: PatrolRules
) -> None:
    if end["ts"] - start["ts"] >= rules.stop_min_s:
        report.stops.append(
            {
                "from": start["ts"],
                "to": end["ts"],
                "minutes": round((end["ts"] - start["ts"]) / 60, 1),
                "lat": start["lat"],
                "lon": start["lon"],
            }
        )


def shift_by_grid(reports: Iterable[tuple[str | None, PatrolReport]]) -> list[dict[str, Any]]:
    """Each home grid's shift, its units' reports added up (a unit without one: `-`)."""
    return added_up(((grid or "-", report) for grid, report in reports), "grid")


def shift_by_officer(reports: Iterable[tuple[Stint, PatrolReport]]) -> list[dict[str, Any]]:
    """Each officer's shift: the reports of the units they were on, for the time they were on
    them, added up (`units`: how many such stretches), with the officer's name."""
    reports = list(reports)
    rows = added_up(((stint.officer_id, report) for stint, report in reports), "officer")
    names = {stint.officer_id: stint.name for stint, _ in reports}
    return [{**row, "name": names[row["officer"]]} for row in rows]


def added_up(reports: Iterable[tuple[str, PatrolReport]], key: str) -> list[dict[str, Any]]:
    """Reports added up per value of `key` (a home grid, an officer), in its order."""
    rows: dict[str, dict[str, Any]] = {}
    for value, report in reports:
        row = rows.setdefault(
            value,
            {
                key: value,
                "units": 0,
                "km": 0.0,
                "moving_s": 0.0,
                "stationary_s": 0.0,
                "no_data_s": 0.0,
                "in_home_grid_s": 0.0,
                "long_stops": 0,
            },
        )
        row["units"] += 1
        row["km"] += report.distance_m / 1000
        for name in ("moving_s", "stationary_s", "no_data_s", "in_home_grid_s"):
            row[name] += getattr(report, name)
        row["long_stops"] += len(report.stops)
    for row in rows.values():
        row["km"] = round(row["km"], 3)
        for name in ("moving_s", "stationary_s", "no_data_s", "in_home_grid_s"):
            row[name] = round(row[name])
    return sorted(rows.values(), key=lambda r: r[key])
