"""Drive times from an OSRM server: one `table` request, the units as sources, the scene as
the single destination. Any failure is a RoutingError whose text names the server and the
cause; the caller falls back to the straight line and shows that text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

MAX_ORIGINS = 100  # OSRM's default table limit is larger; callers shortlist well below this


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
        n = len(origins)
        if n > MAX_ORIGINS:
            raise ValueError(f"at most {MAX_ORIGINS} origins per request, got {n}")
        # OSRM wants lon,lat; the query is built by hand so ';' stays literal as in its docs
        points = ";".join(f"{lon:.6f},{lat:.6f}" for lat, lon in (*origins, dest))
        sources = ";".join(map(str, range(n)))
        query = f"sources={sources}&destinations={n}&annotations=duration,distance"
        where = f"OSRM at {self.base_url}"
        try:
            reply = self.session.get(
                f"{self.base_url}/table/v1/{self.profile}/{points}?{query}",
                timeout=self.timeout_s,  # requests applies it to connect and to each read
            )
        except requests.Timeout:
            raise RoutingError(f"{where} did not answer within {self.timeout_s} s") from None
        except requests.RequestException as exc:
            raise RoutingError(f"{where} cannot be reached ({_root_cause(exc)})") from None
        try:
            body = reply.json()
        except ValueError:
            text = " ".join(reply.text[:60].split())
            raise RoutingError(
                f"{where} answered HTTP {reply.status_code} that is not JSON: {text!r}"
            ) from None
        if not isinstance(body, dict):
            raise RoutingError(f"{where} answered JSON that is not an object")
        if body.get("code") != "Ok" or reply.status_code != 200:
            code = body.get("code") or "an error"
            status = "" if reply.status_code == 200 else f" (HTTP {reply.status_code})"
            raise RoutingError(f"{where} answered {code}{status}: {body.get('message', '')}")
        durations = _column(where, body, "durations", n)
        distances = _column(where, body, "distances", n)
        return [
            None if t is None or d is None else Leg(t, d)
            for t, d in zip(durations, distances, strict=True)
        ]

    def close(self) -> None:
        self.session.close()


def _column(where: str, body: dict, key: str, n: int) -> list[float | None]:
    """The n-by-1 matrix `key` as a list; anything else means a server we misunderstand."""
    rows = body.get(key)
    if not isinstance(rows, list) or len(rows) != n:
        got = f"{len(rows)} rows" if isinstance(rows, list) else repr(rows)[:40]
        raise RoutingError(f"{where} answered {key} with {got} for {n} units")
    values: list[float | None] = []
    for row in rows:
        value: Any = row[0] if isinstance(row, list) and len(row) == 1 else "bad"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (number and math.isfinite(value) and value >= 0):
            raise RoutingError(f"{where} answered {key} with {row!r} for one unit")
        values.append(None if value is None else float(value))
    return values


def _root_cause(exc: BaseException) -> str:
    """'Connection refused' rather than urllib3's paragraph (which repeats the whole URL)."""
    seen: BaseException | None = exc
    for _ in range(10):  # a bounded walk: exception chains can, in principle, loop
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else seen.__cause__ or seen.__context__
    return str(exc)[:200] or type(exc).__name__
