"""Distances on the earth, the one copy the agent's filters, the server's rules and the
simulator measure with (the agent may import neither the server nor anything but this and
the wire contract)."""

from __future__ import annotations

import math
from collections.abc import Mapping

EARTH_RADIUS_M = 6_371_008.8  # mean radius: the error against WGS84 is < 0.5 %
M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def fix_distance_m(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Distance between two fixes (anything with `lat` and `lon`), in metres."""
    return distance_m(a["lat"], a["lon"], b["lat"], b["lon"])
