"""What an alarm means, as pure functions over plain values: where its units go, the time a
person pressed, when a dispatcher's silence calls the commanders.

No I/O: the order book asks these and does what they say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.rules.geo import PostPoint

# The alarm's own fix, the unit's latest, its response post, its last known position.
PLACE_SOURCES = ("alarm_fix", "unit_fix", "post", "last_known", "dispatcher")
# A device clock this far ahead of the server's still counts (network and rounding).
DEVICE_AHEAD_S = 2.0
PANIC_PRIORITY = 1
# the summary of a call a panic raises, as screens word it (static/said.js) and in English
PANIC_SUMMARY = "panic_at"


@dataclass(frozen=True)
class PanicCall:
    category: str
    priority: int
    summary: str
    summary_params: dict[str, str]
    summary_code: str = PANIC_SUMMARY


def panic_incident(categories: tuple[str, ...], unit_name: str) -> PanicCall:
    """The incident a panic raises: the first category the command centre names (its most
    urgent), the highest priority."""
    return PanicCall(
        categories[0], PANIC_PRIORITY, f"Panic button at {unit_name}", {"unit": unit_name}
    )


@dataclass(frozen=True)
class Place:
    """Where an incident's units are sent, which source gave it, and how old it was."""

    lat: float | None
    lon: float | None
    source: str | None  # one of PLACE_SOURCES, None when nothing is known
    age_s: float | None = None

    @property
    def known(self) -> bool:
        return self.lat is not None and self.lon is not None


def alarm_place(
    alarm_fix: dict[str, Any] | None,
    unit_fix: dict[str, Any] | None,
    post: PostPoint | None,
    at: float,
    fresh_s: float,
) -> Place:
    """Where an alarm's units go.

    A fresh fix first: the alarm's own, else the unit's latest (no older than `fresh_s`).
    Without one, the unit's surveyed response post: a kiosk stands there, and a fix never
    had is no reason to send nobody. Else the newest fix known, however old, with its age.
    """
    for source, fix in (("alarm_fix", alarm_fix), ("unit_fix", unit_fix)):
        if fix is not None and at - fix["ts"] <= fresh_s:
            return Place(fix["lat"], fix["lon"], source, round(max(0.0, at - fix["ts"]), 1))
    if post is not None:
        return Place(post.lat, post.lon, "post")
    known = [f for f in (alarm_fix, unit_fix) if f is not None]
    if not known:
        return Place(None, None, None)
    newest = max(known, key=lambda f: f["ts"])
    return Place(newest["lat"], newest["lon"], "last_known", round(at - newest["ts"], 1))


@dataclass(frozen=True)
class PressedAt:
    """The time a step counts at; `distrust` says why the device's own time was not used."""

    ts: float
    device_ts: float | None
    received_at: float
    distrust: str | None = None

    @property
    def source(self) -> str:
        return "device" if self.device_ts is not None and not self.distrust else "server"

    def public(self) -> dict[str, Any]:
        """What the timeline keeps of it."""
        out: dict[str, Any] = {"device_ts": self.device_ts, "received_at": self.received_at}
        if self.source == "server":
            out["time_source"] = "server"
        if self.distrust:
            out["why"] = self.distrust
        return out


def pressed_at(device_ts: float | None, received_at: float, not_before: float) -> PressedAt:
    """The time a person pressed: the device's, when it is plausible.

    A press waits in the unit's outbox while its link is down, so the device's time is
    when it happened. It is not plausible ahead of the server's clock, nor before what it
    answers (the order's last step, the unit's own provisioning): then the time it came
    is used, and the reason kept. Either way no step counts before the one it follows.
    """
    server_time = max(received_at, not_before)
    if device_ts is None:
        return PressedAt(server_time, None, received_at)
    ahead = device_ts - received_at
    if ahead > DEVICE_AHEAD_S:
        return PressedAt(server_time, device_ts, received_at, f"device clock {ahead:.0f} s ahead")
    if device_ts < not_before:
        early = not_before - device_ts
        return PressedAt(
            server_time, device_ts, received_at, f"device time {early:.0f} s before it could be"
        )
    return PressedAt(min(device_ts, received_at), device_ts, received_at)


def clock_offset(samples: list[float]) -> float | None:
    """A unit's clock offset (server minus device, seconds) from (received - sent) samples:
    the smallest, as a message is only ever late, never early."""
    return min(samples) if samples else None


def alarm_ack_overdue(
    received_at: float,
    acknowledged_at: float | None,
    escalated_at: float | None,
    now: float,
    limit_s: float,
) -> bool:
    """An alarm no dispatcher acknowledged within `limit_s` goes to the commanders, once."""
    return acknowledged_at is None and escalated_at is None and now - received_at >= limit_s
