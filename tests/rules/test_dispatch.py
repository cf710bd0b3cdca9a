"""Which units to send, as pure functions: ETA, the recommendation, drive times. No I/O."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.rules.dispatch import (
    ON_FOOT,
    RESPONDING_KINDS,
    Candidate,
    DriveLeg,
    EtaModel,
    Rules,
    Scene,
    brute_force_nearby,
    distance_m,
    kinds_for_call,
    not_police_refusal,
    recommend,
    with_drive_times,
    within_reach,
)
from server.rules.plans import BUILT_IN

HERE = (31.23, 121.47)
NOW = 1_800_000_000.0
M_PER_DEG = 111_195.0
RULES = Rules()


def unit(unit_id: str, north_m: float, kind: str = "patrol_car", **kw) -> Candidate:
    kw.setdefault("fix_ts", NOW)
    return Candidate(unit_id, kind, HERE[0] + north_m / M_PER_DEG, HERE[1], **kw)


def ranked(units, scene: Scene | None = None, **kw):
    return recommend(scene or Scene(*HERE), brute_force_nearby(*HERE, units), NOW, RULES, **kw)


def test_distance_is_a_great_circle() -> None:
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-4)
    assert distance_m(*HERE, *HERE) == 0


def test_eta_is_the_straight_line_times_the_road_factor_at_the_kinds_speed() -> None:
    model = EtaModel(road_factor=1.5, speeds_ms={"patrol_car": 10.0, "foot": 1.0})
    assert model.eta_s(1000, "patrol_car") == pytest.approx(150)
    assert model.eta_s(1000, "foot") == pytest.approx(1500)
    assert model.fastest_eta_s(1000, ["foot", "patrol_car"]) == pytest.approx(150)


def test_units_are_ranked_by_arrival_and_a_faster_kind_can_beat_a_nearer_one() -> None:
    recs = ranked([unit("car", 1000), unit("bike", 1100, "motorcycle"), unit("far", 3000)])
    assert [r.unit_id for r in recs] == ["bike", "car", "far"]
    assert recs[0].eta_s == pytest.approx(1100 * 1.4 / 12.5, rel=1e-3)
    assert all(r.recommendable for r in recs)


def test_stale_and_busy_units_are_passed_over_with_the_reason() -> None:
    recs = ranked(
        [
            unit("old", 50, fix_ts=NOW - 90),
            unit("busy", 80, status="on_scene"),
            unit("out", 90, status="out_of_service"),
            unit("ok", 400),
        ]
    )
    assert [r.unit_id for r in recs if r.recommendable] == ["ok"]
    why = {r.unit_id: r.reason for r in recs if not r.recommendable}
    assert why == {
        "old": "position 90 s old (limit 60 s)",
        "busy": "on scene",
        "out": "out of service",
    }


def test_units_passed_over_are_listed_only_if_nearer_than_the_last_recommended() -> None:
    recs = ranked([unit("a", 100), unit("b", 200), unit("busy-far", 900, status="busy")], limit=2)
    assert [r.unit_id for r in recs] == ["a", "b"]


def test_kinds_and_exclusions_filter() -> None:
    units = [unit("car", 100), unit("post", 50, "guard_post"), unit("me", 10)]
    assert [r.unit_id for r in ranked(units, exclude=frozenset({"me"}))] == ["car"]
    assert [r.unit_id for r in ranked(units, kinds=frozenset({"guard_post"}))] == ["post"]


def test_the_same_whole_second_goes_to_the_own_grid_then_the_neighbours() -> None:
    scene = Scene(*HERE, grid="G1", neighbours=frozenset({"G2"}))
    units = [
        unit("other", 100.0, grid="G9"),
        unit("neighbour", 100.5, grid="G2"),
        unit("own", 101.0, grid="G1"),
    ]
    recs = ranked(units, scene=scene)
    assert [r.unit_id for r in recs] == ["own", "neighbour", "other"]
    assert [r.echelon for r in recs] == ["own_grid", "neighbour", "other"]
    assert "own grid" in recs[0].reason and "straight-line" in recs[0].reason


def test_recommend_reads_only_as_far_as_it_must() -> None:
    line = [unit(f"u{i:04d}", 10.0 * i) for i in range(1000)]
    taken = 0

    def stream():
        nonlocal taken
        for pair in brute_force_nearby(*HERE, line):
            taken += 1
            yield pair

    recs = recommend(Scene(*HERE), stream(), NOW, RULES, limit=3)
    assert [r.unit_id for r in recs] == ["u0000", "u0001", "u0002"]
    assert taken < 20


def test_drive_times_re_rank_and_missing_routes_keep_the_estimate() -> None:
    recs = ranked([unit("a", 100), unit("b", 500), unit("c", 900), unit("x", 50, status="busy")])
    routed = with_drive_times(recs, {"a": DriveLeg(300, 2000), "b": DriveLeg(60, 600), "c": None})
    assert [r.unit_id for r in routed] == ["b", "c", "a", "x"]
    assert routed[0].eta_source == "osrm" and "OSRM" in routed[0].reason
    assert routed[1].eta_source == "straight_line" and "no road route found" in routed[1].reason
    assert not routed[-1].recommendable


def test_units_the_router_was_not_asked_about_keep_their_estimate() -> None:
    recs = ranked([unit("a", 100), unit("b", 500)])
    routed = with_drive_times(recs, {"b": DriveLeg(5, 600)})
    assert [(r.unit_id, r.eta_source) for r in routed] == [("b", "osrm"), ("a", "straight_line")]


units_st = st.lists(
    st.tuples(
        st.floats(-5000, 5000),
        st.sampled_from(["patrol_car", "motorcycle", "guard_post"]),
        st.sampled_from(["available", "available", "busy"]),
        st.floats(0, 120),
        st.sampled_from(["G1", "G2", "G3"]),
    ),
    max_size=40,
)


@given(units_st, st.integers(1, 10))
def test_recommendations_are_sorted_by_eta_and_the_best_is_the_fastest(raw, limit) -> None:
    units = [
        unit(f"u{i:02d}", north, kind, status=status, fix_ts=NOW - age, grid=grid)
        for i, (north, kind, status, age, grid) in enumerate(raw)
    ]
    scene = Scene(*HERE, grid="G1", neighbours=frozenset({"G2"}))
    recs = recommend(
        scene,
        brute_force_nearby(*HERE, units),
        NOW,
        RULES,
        frozenset({"patrol_car", "motorcycle"}),
        limit=limit,
    )
    good = [r for r in recs if r.recommendable]
    assert [round(r.eta_s) for r in good] == sorted(round(r.eta_s) for r in good)
    eligible = [
        RULES.eta.eta_s(distance_m(*HERE, u.lat, u.lon), u.kind)
        for u in units
        if u.kind != "guard_post" and u.status == "available" and NOW - u.fix_ts <= 60
    ]
    assert len(good) == min(limit, len(eligible))
    if eligible:
        assert round(good[0].eta_s) == round(min(eligible))
    assert all(not r.recommendable for r in recs[len(good) :])
    assert len({r.unit_id for r in recs}) == len(recs)


@given(st.lists(st.floats(0, 3000), min_size=1, max_size=30))
def test_the_lazy_stream_and_the_full_list_give_the_same_answer(norths) -> None:
    units = [unit(f"u{i:02d}", n) for i, n in enumerate(norths)]
    full = recommend(Scene(*HERE), brute_force_nearby(*HERE, units), NOW, RULES, limit=100)
    lazy = recommend(
        Scene(*HERE), iter(brute_force_nearby(*HERE, units)), NOW, RULES, limit=len(units)
    )
    assert [r.unit_id for r in full] == [r.unit_id for r in lazy]
    assert list(itertools.islice((r.unit_id for r in full), 3)) == [
        r.unit_id
        for r in recommend(Scene(*HERE), brute_force_nearby(*HERE, units), NOW, RULES, limit=3)
    ]


def test_the_nearest_policy_goes_by_the_straight_line_alone() -> None:
    units = [unit("car", 1000), unit("bike", 1100, "motorcycle"), unit("far", 3000)]
    scene = Scene(*HERE)
    nearest = Rules(policy="nearest")
    recs = recommend(scene, brute_force_nearby(*HERE, units), NOW, nearest, limit=2)
    assert [r.unit_id for r in recs] == ["car", "bike"]  # the faster bike no longer wins
    assert [r.unit_id for r in ranked(units, limit=2)] == ["bike", "car"]


def test_the_own_grid_policy_sends_only_the_grids_units_and_says_why_not_the_others() -> None:
    scene = Scene(*HERE, grid="G1", neighbours=frozenset({"G2"}))
    units = [unit("next-door", 100, grid="G2"), unit("home", 2000, grid="G1")]
    own = Rules(policy="own_grid")
    recs = recommend(scene, brute_force_nearby(*HERE, units), NOW, own)
    assert [(r.unit_id, r.recommendable) for r in recs] == [("home", True), ("next-door", False)]
    assert recs[1].reason == "not of grid G1 (own-grid policy)"
    # none of its own available: nothing recommendable, the plan waits for one
    recs = recommend(scene, brute_force_nearby(*HERE, units[:1]), NOW, own)
    assert not any(r.recommendable for r in recs)
    # the default policy sends the neighbour's car, which is there first
    assert ranked(units, scene)[0].unit_id == "next-door"


def test_people_on_foot_are_offered_and_volunteers_sent_only_where_a_plan_names_them() -> None:
    lost = BUILT_IN["normal"].plans["lost_person"].kinds()
    anything = BUILT_IN["normal"].plans["*"].kinds()
    assert kinds_for_call(lost) == {"patrol_car", "motorcycle", "foot", "volunteer"}
    assert kinds_for_call(anything) == RESPONDING_KINDS
    assert not_police_refusal("vol-1", "volunteer", lost) is None
    assert "volunteers go only" in str(not_police_refusal("vol-1", "volunteer", anything))
    assert not_police_refusal("car-1", "patrol_car", anything) is None
    for level in BUILT_IN.values():  # no built-in plan sends volunteers to police work
        for match, plan in level.plans.items():
            assert ("volunteer" in plan.kinds()) == (match in ("search", "crowd", "lost_person"))


def test_a_call_out_takes_everyone_of_its_kinds_within_the_radius_who_could_go() -> None:
    units = [
        unit("vol-near", 100, "volunteer"),
        unit("car-near", 150),
        unit("vol-stale", 200, "volunteer", fix_ts=NOW - 3600),
        unit("foot-busy", 300, "foot", status="dispatched"),
        unit("foot-1", 900, "foot"),
        unit("vol-far", 2500, "volunteer"),
    ]
    nearby = brute_force_nearby(*HERE, units)
    reached = within_reach(Scene(*HERE), nearby, NOW, RULES, ON_FOOT, radius_m=1000)
    assert reached == ["vol-near", "foot-1"]
