"""One recommendation over a city of live units: the server's index against brute force.

10,000 units (80 % patrol cars, 20 % guard posts) spread over a 30 x 30 km city; for each of
1,000 random scenes, the ten nearest units by:

* `numpy brute force` (the baseline): haversine to every unit, vectorised, then
  `argpartition` for the ten and a sort of those;
* `index`: the server's `UnitIndex` (grid cells, rings outward, lazily), first ten;
* `recommend`: the whole decision the API makes, `server.dispatch.recommend` over the
  index's stream (ETA per kind, freshness, echelon, reasons), ten recommendations;

and the cost of moving a unit in the index (every fix does it). The top ten of the index must
equal brute force's for every scene.

    python -m bench.recommend           # 10,000 units, 1,000 scenes
    python -m bench.recommend --quick   # 2,000 units, 200 scenes
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import numpy as np

from bench.report import machine_facts, summary_ms, table
from server.dispatch import EARTH_RADIUS_M, Candidate, Rules, Scene, recommend
from server.unit_index import UnitIndex

CENTRE = (31.23, 121.47)
HALF_SIDE_DEG = (0.135, 0.158)  # ~15 km each way at this latitude
TARGET_MS = 0.5
TOP = 10


def city(n: int, rng: random.Random) -> list[tuple[str, str, float, float]]:
    units = []
    for i in range(n):
        kind = "guard_post" if i % 5 == 0 else "patrol_car"
        lat = CENTRE[0] + rng.uniform(-HALF_SIDE_DEG[0], HALF_SIDE_DEG[0])
        lon = CENTRE[1] + rng.uniform(-HALF_SIDE_DEG[1], HALF_SIDE_DEG[1])
        units.append((f"unit-{i:05d}", kind, lat, lon))
    return units


def brute_force(lats: np.ndarray, lons: np.ndarray, lat: float, lon: float) -> np.ndarray:
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, a)))
    top = np.argpartition(dist, TOP)[:TOP]
    return top[np.argsort(dist[top], kind="stable")]


def timed(fn, scenes) -> tuple[list[float], list]:
    times, answers = [], []
    for lat, lon in scenes:
        start = time.perf_counter()
        answers.append(fn(lat, lon))
        times.append(time.perf_counter() - start)
    return times, answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--scenes", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="2,000 units, 200 scenes")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.scenes = 2_000, 200
    rng = random.Random(args.seed)
    units = city(args.units, rng)
    ids = [u[0] for u in units]
    lats = np.array([u[2] for u in units])
    lons = np.array([u[3] for u in units])
    index = UnitIndex(ref_lat=CENTRE[0])
    for unit_id, _, lat, lon in units:
        index.update(unit_id, lat, lon)
    now = time.time()
    candidates = {u[0]: Candidate(u[0], u[1], u[2], u[3], "available", now) for u in units}
    rules = Rules()
    scenes = [
        (
            CENTRE[0] + rng.uniform(-HALF_SIDE_DEG[0], HALF_SIDE_DEG[0]),
            CENTRE[1] + rng.uniform(-HALF_SIDE_DEG[1], HALF_SIDE_DEG[1]),
        )
        for _ in range(args.scenes)
    ]

    def by_index(lat: float, lon: float) -> list[str]:
        return [u for u, _ in itertools.islice(index.nearest(lat, lon), TOP)]

    def by_numpy(lat: float, lon: float) -> list[str]:
        return [ids[i] for i in brute_force(lats, lons, lat, lon)]

    def by_recommend(lat: float, lon: float) -> list:
        nearby = ((candidates[u], d) for u, d in index.nearest(lat, lon))
        return recommend(Scene(lat, lon), nearby, now, rules, limit=TOP)

    for fn in (by_numpy, by_index, by_recommend):  # warm caches and the JIT-less interpreter
        fn(*scenes[0])
    numpy_t, numpy_top = timed(by_numpy, scenes)
    index_t, index_top = timed(by_index, scenes)
    rec_t, _ = timed(by_recommend, scenes)
    mismatches = sum(a != b for a, b in zip(numpy_top, index_top, strict=True))

    moves = [(u, lat + rng.uniform(-0.001, 0.001), lon) for u, _, lat, lon in units]
    start = time.perf_counter()
    for unit_id, lat, lon in moves:
        index.update(unit_id, lat, lon)
    update_us = (time.perf_counter() - start) / len(moves) * 1e6

    rows = []
    for name, times in (
        ("numpy brute force (baseline)", numpy_t),
        ("index, nearest ten", index_t),
        ("recommend() over the index", rec_t),
    ):
        s = summary_ms(times)
        rows.append((name, sum(times) / len(times) * 1000, s["p50"], s["p99"]))
    print(f"one recommendation over {args.units:,} live units, {args.scenes:,} scenes")
    print(machine_facts())
    print(table(("method", "mean ms", "p50 ms", "p99 ms"), rows))
    print(
        f"same top-{TOP} as brute force: {'yes' if not mismatches else 'NO'} "
        f"({mismatches} mismatches)"
    )
    print(f"index update: {update_us:.2f} µs per moved unit")
    met = rows[2][1] <= TARGET_MS
    print(
        f"target: recommend() <= {TARGET_MS} ms per query: {'met' if met else 'MISSED'} "
        f"({rows[2][1]:.3f} ms; {rows[0][1] / rows[2][1]:.1f}x the numpy baseline's speed)"
    )
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
