"""One recommendation over a city of live units: the server's index against brute force.

10,000 units (80 % patrol cars, 20 % guard posts) spread uniformly over a 30 x 30 km city
around Shanghai; for each of 1,000 random scenes, the ten nearest units by:

* `numpy brute force` (the baseline): haversine to every unit, vectorised, then
  `argpartition` for the ten and a sort of those;
* `index`: the server's `UnitIndex` (grid cells, rings outward, lazily), first ten;
* `recommend`: the whole decision the API makes, `server.dispatch.recommend` over the
  index's stream (ETA per kind, freshness, echelon, reasons), ten recommendations;

and the cost of putting a unit in the index and of moving it (every fix does that). The top
ten of the index must equal brute force's for every scene (the exit status is 1 if not);
the timings are printed, never asserted. The city is frozen out of the garbage collector's
reach before timing (`gc.freeze()`), so no query is charged with a full collection.

    python -m bench.recommend           # 10,000 units, 1,000 scenes
    python -m bench.recommend --quick   # 2,000 units, 200 scenes
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from bench.cli import POSITIVE, POSITIVE_INT, at_least, parser
from bench.report import machine_facts, met, summary_ms, table
from geodesy import EARTH_RADIUS_M
from server.rules.dispatch import Candidate, Rules, Scene, recommend
from server.state.unit_index import UnitIndex

CENTRE = (31.23, 121.47)
HALF_SIDE_DEG = (0.135, 0.158)  # ~15 km each way at this latitude
TARGET_MS = 0.5
TOP = 10
GUARD_SHARE = 0.2


def city(n: int, rng: random.Random) -> list[tuple[str, str, float, float]]:
    """(unit id, kind, lat, lon) of n units; one in five is a guard post."""
    units = []
    for i in range(n):
        kind = "guard_post" if i % round(1 / GUARD_SHARE) == 0 else "patrol_car"
        units.append((f"unit-{i:05d}", kind, *somewhere(rng)))
    return units


def somewhere(rng: random.Random) -> tuple[float, float]:
    return (
        CENTRE[0] + rng.uniform(-HALF_SIDE_DEG[0], HALF_SIDE_DEG[0]),
        CENTRE[1] + rng.uniform(-HALF_SIDE_DEG[1], HALF_SIDE_DEG[1]),
    )


def brute_force(lats: np.ndarray, lons: np.ndarray, lat: float, lon: float) -> np.ndarray:
    """Indices of the TOP nearest, nearest first (ties by index, which is unit id order)."""
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, a)))
    top = np.argpartition(dist, TOP)[:TOP]
    return top[np.argsort(dist[top], kind="stable")]


def timed(
    fn: Callable[[float, float], object], scenes: Sequence[tuple[float, float]]
) -> tuple[list[float], list]:
    times, answers = [], []
    for lat, lon in scenes:
        start = time.perf_counter()
        answers.append(fn(lat, lon))
        times.append(time.perf_counter() - start)
    return times, answers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = parser(
        "bench.recommend",
        "The nearest ten units and one recommendation over a city of live units: the "
        "server's spatial index beside numpy brute force.",
        quick="a smoke run: 2,000 units, 200 scenes",
    )
    options.add_argument(
        "--units", type=at_least(int, TOP, above=True), default=10_000, help="live units [10000]"
    )
    options.add_argument("--scenes", type=POSITIVE_INT, default=1_000, help="random scenes [1000]")
    options.add_argument("--cell-m", type=POSITIVE, default=500.0, help="index cell side [500]")
    options.add_argument("--seed", type=int, default=7, help="random seed [7]")
    args = options.parse_args(argv)
    if args.quick:
        args.units, args.scenes = 2_000, 200
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    units = city(args.units, rng)
    scenes = [somewhere(rng) for _ in range(args.scenes)]
    ids = [u[0] for u in units]
    lats = np.array([u[2] for u in units])
    lons = np.array([u[3] for u in units])

    index = UnitIndex(cell_m=args.cell_m, ref_lat=CENTRE[0])
    start = time.perf_counter()
    for unit_id, _, lat, lon in units:
        index.update(unit_id, lat, lon)
    insert_us = (time.perf_counter() - start) / len(units) * 1e6

    def by_numpy(lat: float, lon: float) -> list[str]:
        return [ids[i] for i in brute_force(lats, lons, lat, lon)]

    def by_index(lat: float, lon: float) -> list[str]:
        return [u for u, _ in itertools.islice(index.nearest(lat, lon), TOP)]

    now = time.time()
    candidates = {u: Candidate(u, kind, lat, lon, "available", now) for u, kind, lat, lon in units}
    rules = Rules()

    def by_recommend(lat: float, lon: float) -> list:
        nearby = ((candidates[u], d) for u, d in index.nearest(lat, lon))
        return recommend(Scene(lat, lon), nearby, now, rules, limit=TOP)

    methods: list[tuple[str, Callable[[float, float], object]]] = [
        ("numpy brute force (baseline)", by_numpy),
        ("index, nearest ten", by_index),
        ("recommend() over the index", by_recommend),
    ]

    for _, fn in methods:  # warm up caches
        fn(*scenes[0])
    # The city is long-lived: keep the collector from walking it mid-series, so that one
    # query is not charged with a full collection's pause.
    gc.collect()
    gc.freeze()
    results = {name: timed(fn, scenes) for name, fn in methods}
    numpy_top = results["numpy brute force (baseline)"][1]
    index_top = results["index, nearest ten"][1]
    mismatches = sum(a != b for a, b in zip(numpy_top, index_top, strict=True))
    short = sum(len(r) < TOP for r in results["recommend() over the index"][1])

    # every unit moves a little (up to ~100 m), as a round of GPS fixes would move it
    moves = [
        (u, lat + rng.uniform(-0.001, 0.001), lon + rng.uniform(-0.001, 0.001))
        for u, _, lat, lon in units
    ]
    start = time.perf_counter()
    for unit_id, lat, lon in moves:
        index.update(unit_id, lat, lon)
    update_us = (time.perf_counter() - start) / len(moves) * 1e6

    rows = []
    means = {}
    for name, (times, _) in results.items():
        s = summary_ms(times)
        means[name] = statistics.fmean(times) * 1000
        rows.append((name, means[name], s["p50"], s["p99"], s["max"]))
    guards = sum(u[1] == "guard_post" for u in units)
    print(f"machine: {machine_facts()}")
    print(
        f"one recommendation over {args.units:,} live units ({args.units - guards:,} patrol "
        f"cars, {guards:,} guard posts, 30 x 30 km), {args.scenes:,} scenes, top {TOP}, "
        f"{args.cell_m:g} m cells, seed {args.seed}"
    )
    print(table(("method", "mean ms", "p50 ms", "p99 ms", "max ms"), rows))
    print(f"same top-{TOP}: {'yes' if not mismatches else 'no'} ({mismatches} mismatches)")
    if short:
        print(f"recommend(): fewer than {TOP} recommendations for {short} scenes")
    print(
        f"index: {insert_us:.2f} µs per insert ({args.units:,} units), "
        f"{update_us:.2f} µs per update (every unit moved up to ~100 m)"
    )
    print(f"target: <= {TARGET_MS:g} ms per query (mean)")
    baseline = means["numpy brute force (baseline)"]
    for name, mean in means.items():
        if name.startswith("numpy"):
            continue
        print(
            f"  {name}: {mean:.3f} ms, {met(mean <= TARGET_MS)} "
            f"({baseline / mean:.1f}x the baseline's speed)"
        )
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
