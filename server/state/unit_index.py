"""A spatial index of live unit positions: "who is nearest" without looking at every unit.

Units sit in square cells of a local flat projection. A query walks rings of cells outward
from the scene and yields units in exact great-circle order, lazily: a unit is yielded only
once no unseen cell could hold a nearer one. Moving a unit is a dict update, so every fix
can update it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

from geodesy import M_PER_DEG_LAT, distance_m

# The flat projection's distances are off by a little from the great circle away from
# `ref_lat`; ring bounds are shrunk by this much so the order stays exact.
BOUND_SAFETY = 0.9


class UnitIndex:
    def __init__(self, cell_m: float = 500.0, ref_lat: float = 35.0):
        self.cell_m = cell_m
        self.ref_cos = math.cos(math.radians(ref_lat))
        self.kx = M_PER_DEG_LAT * self.ref_cos / cell_m  # cells per degree of longitude
        self.ky = M_PER_DEG_LAT / cell_m
        self.cells: dict[tuple[int, int], dict[str, tuple[float, float]]] = {}
        self.where: dict[str, tuple[int, int]] = {}
        # cells ever used: it only grows, which keeps the bounds below safe and O(1)
        self.span: tuple[int, int, int, int] | None = None

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lon * self.kx), math.floor(lat * self.ky)

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self.where

    def update(self, unit_id: str, lat: float, lon: float) -> None:
        cell = self._cell(lat, lon)
        old = self.where.get(unit_id)
        if old is not None and old != cell:
            self._drop(unit_id, old)
        self.cells.setdefault(cell, {})[unit_id] = (lat, lon)
        self.where[unit_id] = cell
        x, y = cell
        if self.span is None:
            self.span = (x, y, x, y)
        else:
            x0, y0, x1, y1 = self.span
            self.span = (min(x0, x), min(y0, y), max(x1, x), max(y1, y))

    def remove(self, unit_id: str) -> None:
        cell = self.where.pop(unit_id, None)
        if cell is not None:
            self._drop(unit_id, cell)

    def _drop(self, unit_id: str, cell: tuple[int, int]) -> None:
        members = self.cells[cell]
        del members[unit_id]
        if not members:
            del self.cells[cell]

    def nearest(self, lat: float, lon: float) -> Iterator[tuple[str, float]]:
        """(unit id, metres) of every unit, nearest first; ties by id."""
        if not self.where:
            return
        cx, cy = self._cell(lat, lon)
        assert self.span is not None  # set with the first unit
        x0, y0, x1, y1 = self.span
        last_ring = max(cx - x0, x1 - cx, cy - y0, y1 - cy)
        # A cell is `cell_m` tall and cell_m·cos(lat)/cos(ref_lat) wide on the ground; the
        # narrowest anywhere a unit may be bounds what r rings of cells must span.
        widest_lat = min(89.0, max(abs(lat), abs(y0) / self.ky, abs(y1 + 1) / self.ky))
        cell_side = self.cell_m * min(1.0, math.cos(math.radians(widest_lat)) / self.ref_cos)
        step = cell_side * BOUND_SAFETY
        heap: list[tuple[float, str]] = []
        left = len(self.where)
        ring = 0
        while left:
            if ring > last_ring or 8 * ring > len(self.cells):
                # sparse from here on: take every cell not yet read at once
                for (x, y), members in self.cells.items():
                    if max(abs(x - cx), abs(y - cy)) >= ring:
                        self._push(heap, lat, lon, members)
                bound = math.inf
            else:
                for cell in self._ring(cx, cy, ring):
                    in_cell = self.cells.get(cell)
                    if in_cell:
                        self._push(heap, lat, lon, in_cell)
                # every unit not yet found lies at least `ring` whole cells away
                bound = ring * step
            while heap and heap[0][0] <= bound:
                dist, unit_id = heapq.heappop(heap)
                left -= 1
                yield unit_id, dist
            ring += 1

    @staticmethod
    def _push(heap: list, lat: float, lon: float, members: dict) -> None:
        for unit_id, (ulat, ulon) in members.items():
            heapq.heappush(heap, (distance_m(lat, lon, ulat, ulon), unit_id))

    @staticmethod
    def _ring(cx: int, cy: int, r: int) -> Iterator[tuple[int, int]]:
        if r == 0:
            yield cx, cy
            return
        for x in range(cx - r, cx + r + 1):
            yield x, cy - r
            yield x, cy + r
        for y in range(cy - r + 1, cy + r):
            yield cx - r, y
            yield cx + r, y
