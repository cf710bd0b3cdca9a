"""The unit's sense of the time: the system clock once chrony has set it, GPS time until then.

A Pi has no battery-backed clock: booted without network, it starts from the time it last
saved (fake-hwclock) or from 1970, until chrony, fed by gpsd (firmware_config/chrony), steps
it. Until the kernel says the clock is synchronised, the time is the newest accepted fix's
GPS time plus the boot's monotonic clock since that fix arrived: fixes are judged, and alarms,
acks and health are stamped, by it, so a Pi that boots offline with a clock years off still
reports. `unit_time` is the decision; `kernel_synced` asks the kernel (adjtimex(2), as
timedatectl does).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised (STA_UNSYNC)


@dataclass(frozen=True)
class GpsAnchor:
    gps_ts: float  # a fix's time, from the satellites
    mono: float  # the monotonic clock when that fix arrived


def unit_time(wall: float, mono: float, synced: bool, anchor: GpsAnchor | None) -> float:
    """Now, by the system clock when synchronised (or when no fix came yet), else by GPS."""
    if synced or anchor is None:
        return wall
    return anchor.gps_ts + (mono - anchor.mono)


def clock_source(synced: bool, anchor: GpsAnchor | None) -> str:
    """What health says the unit's times come from."""
    return "system" if synced else "gps" if anchor is not None else "unsynced"


def _adjtimex() -> Callable[[], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    if not hasattr(libc, "adjtimex"):
        return None
    buffer = ctypes.create_string_buffer(512)  # struct timex; modes = 0: read only

    def state() -> int:
        result: int = libc.adjtimex(buffer)
        return result

    return state


_STATE = _adjtimex()


def kernel_synced() -> bool:
    """The kernel's word that a time service disciplines the clock (not TIME_ERROR)."""
    return _STATE is not None and _STATE() not in (-1, TIME_ERROR)


class UnitClock:
    """The time every message is stamped and every fix judged with; remembers when the
    system clock was last seen synchronised (health's `clock_synced_at`)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        synced: Callable[[], bool] = kernel_synced,
    ):
        self._wall = wall
        self._mono = mono
        self._synced = synced
        self.anchor: GpsAnchor | None = None
        self.synced_at: float | None = None

    def synced(self) -> bool:
        if self._synced():
            self.synced_at = self._wall()
            return True
        return False

    def now(self) -> float:
        return unit_time(self._wall(), self._mono(), self.synced(), self.anchor)

    def judging_time(self) -> float | None:
        """What a fix's time is compared with: None while there is nothing to trust (not
        synced, no fix yet), and the first fix sets the time."""
        synced = self.synced()
        if not synced and self.anchor is None:
            return None
        return unit_time(self._wall(), self._mono(), synced, self.anchor)

    def observe(self, fix: dict[str, Any]) -> None:
        """An accepted fix: its GPS time is the time, until the system clock is trusted."""
        self.anchor = GpsAnchor(fix["ts"], self._mono())

    def source(self) -> str:
        return clock_source(self.synced(), self.anchor)
