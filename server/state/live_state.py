"""Live state: where every unit is now, whether it is online, and what it is doing.

Only the ingest worker writes here. A fix older than the unit's latest is history: it is
stored, but never moves the unit on the map. Positions are also kept in a spatial index per
unit kind, so "who is nearest" reads a few cells instead of every unit in the city.

With several instances, each keeps this whole picture: a change made here is handed to
`share` (which shares it through Redis), and changes made elsewhere come in through
`apply_shared`, which neither shares them again nor pushes them to consoles (the instance
that made them did).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from server.rules.alarms import clock_offset
from server.rules.dispatch import Candidate
from server.runtime import clock, metrics
from server.state.unit_index import UnitIndex

CLOCK_SAMPLES = 10


@dataclass
class Target:
    """A scene a unit was sent to, watched for its arrival."""

    lat: float
    lon: float
    since: float  # the order's send time: only fixes after it count
    entered_at: float | None = None


@dataclass
class UnitState:
    unit_id: str
    kind: str
    grid: str = ""
    name: str = ""
    status: str = "available"
    status_since: float = field(default_factory=clock.now)
    online: bool = False
    out_of_service: bool = False
    home_post: str | None = None
    fix: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    last_heard: float | None = None
    targets: dict[str, Target] = field(default_factory=dict)  # order id -> scene
    provisioned_at: float = 0.0  # nothing it sent can have happened before this
    owntracks_device: str | None = None  # a phone heard on OwnTracks' topics: its device
    crew: list[dict[str, str]] = field(default_factory=list)  # [{id, name}] signed on now
    # the latest (receive - send) times of its health reports: its clock's offset
    clock_samples: deque[float] = field(default_factory=lambda: deque(maxlen=CLOCK_SAMPLES))

    @property
    def clock_offset_s(self) -> float | None:
        offset = clock_offset(list(self.clock_samples))
        return None if offset is None else round(offset, 1)

    @classmethod
    def from_row(cls, row: Any, **live: Any) -> UnitState:
        """A unit as the store keeps it (a `Unit` row), with what only the live state knows."""
        return cls(
            row.id,
            row.kind,
            row.grid,
            row.name,
            row.status,
            row.status_since,
            out_of_service=bool(row.out_of_service),
            home_post=row.home_post,
            provisioned_at=row.created_at or 0.0,
            **live,
        )

    def public(self) -> dict[str, Any]:
        """What the API and the console show of a unit."""
        return {
            "id": self.unit_id,
            "kind": self.kind,
            "name": self.name,
            "grid": self.grid,
            "home_post": self.home_post,
            "status": self.status,
            "status_since": self.status_since,
            "online": self.online,
            "out_of_service": self.out_of_service,
            "position": self.fix,
            "clock_offset_s": self.clock_offset_s,
            "crew": self.crew,
        }

    def candidate(self) -> Candidate:
        assert self.fix is not None
        return Candidate(
            self.unit_id,
            self.kind,
            self.fix["lat"],
            self.fix["lon"],
            self.status,
            self.fix["ts"],
            self.grid,
            self.name,
        )


class LiveState:
    def __init__(
        self,
        heard_share_s: float = 5.0,
        share: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.units: dict[str, UnitState] = {}
        self._changed: set[str] = set()
        self._index: dict[str, UnitIndex] = {}
        # (unit id, what changed) for the other instances; None with one instance
        self.on_change = share
        # when a unit was last heard is shared this often: enough to judge its silence
        self.heard_share_s = heard_share_s
        self._heard_shared: dict[str, float] = {}

    def add(self, unit: UnitState) -> None:
        self.units[unit.unit_id] = unit
        if unit.fix is not None:
            self._index_of(unit.kind).update(unit.unit_id, unit.fix["lat"], unit.fix["lon"])

    def remove(self, unit_id: str) -> bool:
        """A unit taken out of the fleet (`fieldlink units remove`); False if it was not here."""
        unit = self.units.pop(unit_id, None)
        if unit is None:
            return False
        self._index_of(unit.kind).remove(unit_id)
        self._changed.discard(unit_id)
        return True

    def get(self, unit_id: str) -> UnitState | None:
        return self.units.get(unit_id)

    def _index_of(self, kind: str) -> UnitIndex:
        index = self._index.get(kind)
        if index is None:
            index = self._index[kind] = UnitIndex()
        return index

    def apply_fixes(self, unit_id: str, fixes: list[dict]) -> bool:
        """Move the unit to the newest of `fixes` if it is newer than what we have."""
        unit = self.units[unit_id]
        newest = max(fixes, key=lambda f: f["ts"])
        if unit.fix is not None and newest["ts"] <= unit.fix["ts"]:
            return False
        unit.fix = newest
        self._index_of(unit.kind).update(unit_id, newest["lat"], newest["lon"])
        self._changed.add(unit_id)
        self._share(unit_id, {"fix": newest})
        return True

    def heard(self, unit_id: str, at: float) -> None:
        self.units[unit_id].last_heard = at
        if (
            self.on_change is not None
            and at - self._heard_shared.get(unit_id, -self.heard_share_s) >= self.heard_share_s
        ):
            self._heard_shared[unit_id] = at
            self._share(unit_id, {"heard": at})

    def clock_sample(self, unit_id: str, late_by: float) -> None:
        """A report sent by the unit's clock at `t` arrived `late_by` seconds later by ours."""
        unit = self.units[unit_id]
        unit.clock_samples.append(late_by)
        metrics.CLOCK_OFFSET.labels(unit_id).set(unit.clock_offset_s or 0.0)

    def set_status(self, unit_id: str, status: str, now: float) -> bool:
        unit = self.units[unit_id]
        if unit.status == status:
            return False
        unit.status, unit.status_since = status, now
        self._changed.add(unit_id)
        self._share(unit_id, {"status": status, "status_since": now})
        return True

    def set_online(self, unit_id: str, online: bool) -> bool:
        unit = self.units[unit_id]
        if unit.online == online:
            return False
        unit.online = online
        self._changed.add(unit_id)
        self._share(unit_id, {"online": online})
        return True

    def set_crew(self, unit_id: str, crew: list[dict[str, str]]) -> None:
        self.units[unit_id].crew = crew
        self._changed.add(unit_id)
        self._share(unit_id, {"crew": crew})

    def set_out_of_service(self, unit_id: str, out: bool) -> None:
        self.units[unit_id].out_of_service = out
        self._share(unit_id, {"out_of_service": out})

    def _share(self, unit_id: str, change: dict[str, Any]) -> None:
        if self.on_change is not None:
            self.on_change(unit_id, change)

    def apply_shared(self, unit_id: str, change: dict[str, Any], heard_at: float) -> None:
        """A change another instance made: a newer fix moves the unit (and says it was heard
        at `heard_at`), a status, online or service flag or a crew is taken as it is."""
        unit = self.units.get(unit_id)
        if unit is None:
            return  # not provisioned when this instance loaded the store
        fix = change.get("fix")
        if fix is not None:
            if unit.fix is None or fix["ts"] > unit.fix["ts"]:
                unit.fix = fix
                self._index_of(unit.kind).update(unit_id, fix["lat"], fix["lon"])
            _heard_at(unit, heard_at)
        if "status" in change and change["status_since"] >= unit.status_since:
            unit.status, unit.status_since = change["status"], change["status_since"]
        if "online" in change:
            unit.online = change["online"]
            if unit.online:
                _heard_at(unit, heard_at)
        if "out_of_service" in change:
            unit.out_of_service = change["out_of_service"]
        if "crew" in change:
            unit.crew = change["crew"]
        if "heard" in change:
            _heard_at(unit, change["heard"])

    def take_changed(self) -> list[dict[str, Any]]:
        """Units changed since the last call, for a throttled console push."""
        changed, self._changed = self._changed, set()
        return [self.units[u].public() for u in changed if u in self.units]

    def bbox(self) -> tuple[float, float, float, float] | None:
        """(min_lat, min_lon, max_lat, max_lon) of every unit with a position."""
        fixes = [u.fix for u in self.units.values() if u.fix is not None]
        if not fixes:
            return None
        lats, lons = [f["lat"] for f in fixes], [f["lon"] for f in fixes]
        return min(lats), min(lons), max(lats), max(lons)

    def nearby(
        self, lat: float, lon: float, kinds: Iterable[str]
    ) -> Iterator[tuple[Candidate, float]]:
        """Units of `kinds` with a position, nearest first, read lazily from the index."""
        streams = [self._index[k].nearest(lat, lon) for k in kinds if k in self._index]
        # ties by id, as each stream gives them, so the order does not depend on the kinds
        for dist, unit_id in heapq.merge(*(((d, u) for u, d in s) for s in streams)):
            yield self.units[unit_id].candidate(), dist


def _heard_at(unit: UnitState, at: float) -> None:
    """Heard at `at`, unless heard later already (the others' news may come late)."""
    unit.last_heard = max(unit.last_heard or at, at)
