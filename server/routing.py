"""Drive times from an OSRM server: one `table` request, the units as sources, the scene as
the single destination. Any failure is a RoutingError; the caller falls back to the straight
line and says so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import requests

MAX_ORIGINS = 100  # OSRM's default table size limit is larger; recommendations need far fewer


class RoutingError(RuntimeError):
    """OSRM gave no usable answer; the text says which server and why."""


@dataclass(frozen=True)
class Leg:
    duration_s: float
    distance_m: float


class OsrmRouter:
    def __init__(self, base_url: str, timeout_s: float = 2.0, profile: str = "driving"):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.profile = profile
        self.session = requests.Session()  # keep-alive: one TCP connection for every query

    def to_point(
        self, dest: tuple[float, float], origins: Sequence[tuple[float, float]]
    ) -> list[Leg | None]:
        """Drive from each origin (lat, lon) to `dest`; None where OSRM finds no road."""
        if not origins:
            return []
        if len(origins) > MAX_ORIGINS:
            raise ValueError(f"at most {MAX_ORIGINS} origins per request, got {len(origins)}")
        points = ";".join(f"{lon:.6f},{lat:.6f}" for lat, lon in (*origins, dest))
        n = len(origins)
        url = f"{self.base_url}/table/v1/{self.profile}/{points}"
        params = {
            "sources": ";".join(map(str, range(n))),
            "destinations": str(n),
            "annotations": "duration,distance",
        }
        where = f"OSRM at {self.base_url}"
        try:
            reply = self.session.get(url, params=params, timeout=self.timeout_s)
        except requests.Timeout:
            raise RoutingError(f"{where} did not answer within {self.timeout_s} s") from None
        except requests.RequestException as exc:
            raise RoutingError(f"{where} cannot be reached: {exc}") from None
        try:
            body = reply.json()
        except ValueError:
            raise RoutingError(f"{where} answered HTTP {reply.status_code}, not JSON") from None
        if not isinstance(body, dict) or body.get("code") != "Ok":
            code = body.get("code") if isinstance(body, dict) else None
            message = body.get("message", "") if isinstance(body, dict) else ""
            raise RoutingError(f"{where} answered {code or reply.status_code}: {message}")
        return [self._leg(where, body, i) for i in range(n)]

    @staticmethod
    def _leg(where: str, body: dict, i: int) -> Leg | None:
        try:
            duration = body["durations"][i][0]
            distance = (body.get("distances") or [[None]] * (i + 1))[i][0]
        except (KeyError, IndexError, TypeError):
            raise RoutingError(f"{where} answered a table of the wrong shape") from None
        if duration is None:
            return None
        if not isinstance(duration, int | float) or duration < 0:
            raise RoutingError(f"{where} answered a duration of {duration!r}")
        return Leg(float(duration), float(distance) if distance is not None else 0.0)

    def close(self) -> None:
        self.session.close()
