"""OwnTracks' messages (its published JSON contract) read into the wire contract's messages.

The app reports over MQTT (topic `owntracks/{user}/{device}`, the user being the unit's
broker account) or HTTP (`POST /owntracks`). What it sends, and what each becomes:

- `location` (`tst` fix time, `vel` km/h, `cog`, `acc`, `alt`): a position;
- `lwt` (the broker's will when the phone's link dies): the unit offline;
- `transition` `enter` into a region named by an order's id (the region the server gave the
  phone with `setWaypoints`, see `waypoints_command`): that order's `on_scene`;
- `waypoint(s)`, `card`, `status`, `steps`, `cmd`, `beacon`, `encrypted` and a `leave`:
  nothing for the server (each is counted as ignored, never an error the app would resend).

Pure: no I/O; `server/ingest/pipeline.py` and `server/web/phones.py` use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wire import Channel
from wire.topics import valid_unit_id

KMH_MS = 1 / 3.6  # `vel` is in km/h
PREFIX = "owntracks/"
# what the server's bulk session takes: reports, and transitions (`.../event`)
MQTT_FILTERS = ("owntracks/+/+", "owntracks/+/+/event")
IGNORED = frozenset({"waypoint", "waypoints", "card", "status", "steps", "cmd", "beacon",
                     "encrypted", "configuration", "request"})  # fmt: skip
ARRIVAL_RADIUS_M = 100  # the scene's region handed to the phone


class OwnTracksError(ValueError):
    """A message that cannot be read; the text says what is wrong."""


@dataclass(frozen=True)
class Read:
    """What one OwnTracks message is for fieldlink: a wire message on a channel, or None
    (`why` says what was left alone)."""

    channel: Channel | None
    message: dict[str, Any]
    why: str = ""


def unit_of_topic(topic: str) -> tuple[str, str]:
    """The unit an OwnTracks topic belongs to (its user: the broker account, which the ACL
    binds to the topic) and the device, from `owntracks/{user}/{device}[/event]`."""
    parts = topic.split("/")
    if parts[0] + "/" != PREFIX or len(parts) not in (3, 4) or parts[3:] not in ([], ["event"]):
        raise OwnTracksError(f"topic {topic[:120]!r} is not owntracks/<user>/<device>[/event]")
    if not valid_unit_id(parts[1]) or not valid_unit_id(parts[2]):
        raise OwnTracksError(f"topic {topic[:120]!r} names an invalid user or device")
    return parts[1], parts[2]


def read(body: Any) -> Read:
    """One OwnTracks message as fieldlink's; OwnTracksError if it cannot be read."""
    if not isinstance(body, dict) or not isinstance(body.get("_type"), str):
        raise OwnTracksError("not an OwnTracks message: a JSON object with `_type`")
    kind = body["_type"]
    if kind == "location":
        return Read(Channel.POSITION, _fix(body))
    if kind == "lwt":
        return Read(Channel.STATE, {"online": False, "ts": _number(body, "tst")})
    if kind == "transition":
        region = body.get("desc")
        if body.get("event") == "enter" and isinstance(region, str) and region:
            ts = _number(body, "tst")
            return Read(Channel.ACK, {"order_id": region, "ts": ts, "status": "on_scene"})
        return Read(None, {}, f"transition {body.get('event')!r}")
    if kind in IGNORED:
        return Read(None, {}, kind)
    raise OwnTracksError(f"unknown _type {kind[:40]!r}")


def waypoints_command(orders: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """`setWaypoints` for the phone: a region around each open order's scene, named by the
    order's id, so the app reports entering it (`read`: a transition is an arrival)."""
    waypoints = [
        {
            "_type": "waypoint",
            "desc": order["order_id"],
            "lat": order["location"]["lat"],
            "lon": order["location"]["lon"],
            "rad": ARRIVAL_RADIUS_M,
            "tst": int(now),
        }
        for order in orders
        if order.get("location") and order["location"].get("lat") is not None
    ]
    return {
        "_type": "cmd",
        "action": "setWaypoints",
        "waypoints": {"_type": "waypoints", "waypoints": waypoints},
    }


def _fix(body: dict[str, Any]) -> dict[str, Any]:
    fix = {"ts": _number(body, "tst"), "lat": _number(body, "lat"), "lon": _number(body, "lon")}
    for ours, theirs, factor in (
        ("acc", "acc", 1.0),
        ("alt", "alt", 1.0),
        ("speed", "vel", KMH_MS),
        ("heading", "cog", 1.0),
    ):
        value = _number(body, theirs, required=False)
        if value is not None and value >= 0:  # the apps send -1 for "not known"
            fix[ours] = value * factor
    return fix


def _number(body: dict[str, Any], name: str, required: bool = True) -> float | None:
    value = body.get(name)
    if value is None:
        if required:
            raise OwnTracksError(f"{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OwnTracksError(f"{name}: a JSON number, not {str(value)[:40]!r}")
    if not math.isfinite(value):
        raise OwnTracksError(f"{name}: a finite number")
    return float(value)
