"""Live state: where every unit is now, whether it is online, and what it is doing.

Only the ingest worker writes here. A fix older than the unit's latest is history: it is
stored, but never moves the unit on the map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from server.dispatch import Candidate


@dataclass
class UnitState:
    unit_id: str
    kind: str
    grid: str = ""
    name: str = ""
    status: str = "available"
    status_since: float = field(default_factory=time.time)
    online: bool = False
    fix: dict[str, Any] | None = None
    health: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        """What the API and the console show of a unit."""
        return {
            "id": self.unit_id,
            "kind": self.kind,
            "name": self.name,
            "grid": self.grid,
            "status": self.status,
            "status_since": self.status_since,
            "online": self.online,
            "position": self.fix,
        }


class LiveState:
    def __init__(self) -> None:
        self.units: dict[str, UnitState] = {}
        self._changed: set[str] = set()

    def add(self, unit: UnitState) -> None:
        self.units[unit.unit_id] = unit

    def get(self, unit_id: str) -> UnitState | None:
        return self.units.get(unit_id)

    def apply_fixes(self, unit_id: str, fixes: list[dict]) -> bool:
        """Move the unit to the newest of `fixes` if it is newer than what we have."""
        unit = self.units[unit_id]
        newest = max(fixes, key=lambda f: f["ts"])
        if unit.fix is not None and newest["ts"] <= unit.fix["ts"]:
            return False
        unit.fix = newest
        self._changed.add(unit_id)
        return True

    def set_status(self, unit_id: str, status: str, now: float) -> bool:
        unit = self.units[unit_id]
        if unit.status == status:
            return False
        unit.status, unit.status_since = status, now
        self._changed.add(unit_id)
        return True

    def set_online(self, unit_id: str, online: bool) -> bool:
        unit = self.units[unit_id]
        if unit.online == online:
            return False
        unit.online = online
        self._changed.add(unit_id)
        return True

    def take_changed(self) -> list[dict[str, Any]]:
        """Units changed since the last call, for a throttled console push."""
        changed, self._changed = self._changed, set()
        return [self.units[u].public() for u in changed if u in self.units]

    def candidates(self, kinds: frozenset[str]) -> list[Candidate]:
        """Units of `kinds` with a known position, as dispatch sees them.

        Filtered before anything is built: a city has thousands of units that never drive to
        a call (guard posts, volunteers), and this runs on every alarm.
        """
        return [
            Candidate(
                u.unit_id, u.kind, u.fix["lat"], u.fix["lon"], u.status == "available", u.online
            )
            for u in self.units.values()
            if u.kind in kinds and u.fix is not None
        ]
