"""The server's clock: wall time, or a simulated day that runs faster (`fieldlink simulate`).

Every time the server stamps (incident and order times, events, when a unit was last heard)
comes from `now()`, so a simulated day at 20x is recorded as a day, and its figures read in
minutes of that day. Simulated time and wall time agree at `anchor` and part from there.
Intervals the server waits for in wall time (timer ticks, socket timeouts) stay wall time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    speedup: float = 1.0
    anchor: float = 0.0  # the wall time (epoch s) at which simulated and wall time agree

    def at(self, wall: float) -> float:
        """Simulated time at wall time `wall`."""
        return wall if self.speedup == 1 else self.anchor + (wall - self.anchor) * self.speedup

    def now(self) -> float:
        return self.at(time.time())


WALL = Clock()
_clock = WALL


def now() -> float:
    """The server's time now (epoch s)."""
    return _clock.now()


def run_at(speedup: float, anchor: float) -> None:
    """Set once at start-up from FIELDLINK_CLOCK_SPEEDUP and FIELDLINK_CLOCK_ANCHOR."""
    global _clock
    _clock = Clock(speedup, anchor)
