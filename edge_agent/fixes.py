"""What happens to a fix between gpsd and the outbox: quality filters, then the reporting rate.

Like Traccar's FilterHandler, each filter is a pure function over plain data (the fix, the
track so far, the settings, the clock's time) that says whether the fix is dropped; FILTERS
is their order, cheapest and most basic first. A fix that passes every filter is "accepted"
(the panic alarm carries the newest one); an accepted fix is published when the rate rule
says it is due. `FixStage` holds the little state these decisions read and counts what each
filter dropped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.config import FiltersSettings, GpsdSettings
from geodesy import fix_distance_m
from wire import fix_problem

log = logging.getLogger(__name__)


@dataclass
class Track:
    """What the decisions remember of the fixes before this one."""

    last_accepted: dict[str, Any] | None = None
    last_published: dict[str, Any] | None = None
    slow_since: float | None = None  # fix time since when the unit has been below the speed


# -- quality filters: True means "drop this fix" ------------------------------------------


def no_fix(fix: dict[str, Any], _track: Track, s: FiltersSettings, _now: float | None) -> bool:
    mode: int = fix.get("mode", 0)
    return mode < s.min_mode


def invalid(fix: dict[str, Any], _track: Track, _s: FiltersSettings, _now: float | None) -> bool:
    # Always on, and the wire protocol's own rule (range, sign, NaN): a fix kept here is one
    # the server takes, and so is the panic alarm that carries it.
    return fix_problem(fix) is not None


def null_island(fix: dict[str, Any], _track: Track, s: FiltersSettings, _now: float | None) -> bool:
    return s.null_island and fix["lat"] == 0 and fix["lon"] == 0


def duplicate(fix: dict[str, Any], track: Track, _s: FiltersSettings, _now: float | None) -> bool:
    # Always on: each fix time is published once and in order (the server keys positions by
    # unit + fix time). An older time is a receiver or gpsd replaying the past.
    last = track.last_accepted
    return last is not None and fix["ts"] <= last["ts"]


def future(fix: dict[str, Any], _track: Track, s: FiltersSettings, now: float | None) -> bool:
    # A fix from the future would be the unit's live position until that time passed: the
    # server moves a unit only with a newer fix time. No time to judge by (a clock not yet
    # synced, no fix yet): the fix's own GPS time is the best there is.
    return s.max_future_s > 0 and now is not None and fix["ts"] - now > s.max_future_s


def jump(fix: dict[str, Any], track: Track, s: FiltersSettings, _now: float | None) -> bool:
    last = track.last_published
    if s.max_speed_mps <= 0 or last is None or fix["ts"] <= last["ts"]:
        return False
    elapsed_s: float = fix["ts"] - last["ts"]
    return fix_distance_m(last, fix) / elapsed_s > s.max_speed_mps


def inaccurate(fix: dict[str, Any], _track: Track, s: FiltersSettings, _now: float | None) -> bool:
    # A fix without an error estimate passes: gpsd gives none when the receiver sends no DOP.
    acc: float = fix.get("acc", 0)
    return s.max_acc_m > 0 and acc > s.max_acc_m


Filter = Callable[[dict[str, Any], Track, FiltersSettings, float | None], bool]
FILTERS: tuple[Filter, ...] = (
    no_fix,
    invalid,
    null_island,
    duplicate,
    future,
    jump,
    inaccurate,
)


def rejected_by(
    fix: dict[str, Any], track: Track, s: FiltersSettings, now: float | None
) -> str | None:
    """The name of the first filter that drops `fix`, or None when it is a good fix."""
    for check in FILTERS:
        if check(fix, track, s, now):
            return check.__name__
    return None


# -- reporting rate -----------------------------------------------------------------------


def slow_since(previous: float | None, fix: dict[str, Any], s: GpsdSettings) -> float | None:
    """Since when the unit has been below the stationary speed, after this fix (None: moving).

    A fix without a speed counts as slow: gpsd reports none for a receiver that stands still
    and sends no RMC speed, and the distance rule still catches a unit that moves.
    """
    if fix.get("speed", 0.0) >= s.stationary_speed_mps:
        return None
    return fix["ts"] if previous is None else previous


def is_due(fix: dict[str, Any], track: Track, s: GpsdSettings) -> bool:
    """Publish when the interval passed since the last published fix, or the unit moved far
    enough; while stationary (slow for `stationary_after_s`) the interval is the longer one."""
    last = track.last_published
    if last is None:
        return True
    elapsed = fix["ts"] - last["ts"]
    if elapsed <= 0:
        return False
    still = track.slow_since is not None and fix["ts"] - track.slow_since >= s.stationary_after_s
    if elapsed >= (s.stationary_interval_s if still else s.publish_interval_s):
        return True
    return s.min_distance_m > 0 and fix_distance_m(last, fix) >= s.min_distance_m


class FixStage:
    """The filters and the rate rule applied to each new fix from the GPS reader, in order."""

    def __init__(
        self,
        filters: FiltersSettings,
        rate: GpsdSettings,
        clock: Callable[[], float | None] = time.time,
    ):
        self.filters = filters
        self.rate = rate
        self.clock = clock
        self.track = Track()
        self.dropped: Counter[str] = Counter()  # filter name -> fixes it dropped

    @property
    def filtered(self) -> int:
        return sum(self.dropped.values())

    @property
    def last_good(self) -> dict[str, Any] | None:
        """The newest accepted fix, published or not: what an alarm carries."""
        return self.track.last_accepted

    def offer(self, fix: dict[str, Any]) -> bool:
        """True when `fix` is to be published now."""
        reason = rejected_by(fix, self.track, self.filters, self.clock())
        if reason is not None:
            self.dropped[reason] += 1
            log.debug(
                "dropped fix at %s (%s); dropped so far: %s", fix["ts"], reason, dict(self.dropped)
            )
            return False
        self.track.slow_since = slow_since(self.track.slow_since, fix, self.rate)
        self.track.last_accepted = fix
        if not is_due(fix, self.track, self.rate):
            return False
        self.track.last_published = fix
        return True
