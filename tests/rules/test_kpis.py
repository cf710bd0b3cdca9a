"""Response figures on hand-built incidents whose answers are known."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from server.rules.export import kpis_csv
from server.rules.kpis import (
    IncidentRecord,
    OrderRecord,
    arrival_histogram,
    daily,
    durations,
    kpis_by,
    response_kpis,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=TZ).timestamp()  # 09:00 local


def incident(n: int, **kw) -> IncidentRecord:
    kw.setdefault("category", "dispute")
    kw.setdefault("grid", "G01")
    return IncidentRecord(f"i{n}", created_at=T0 + n * 1000, **kw)


def order(kind: str = "patrol_car", **kw) -> OrderRecord:
    return OrderRecord(kw.pop("unit_id", "car-1"), kind, **kw)


def city_day() -> list[IncidentRecord]:
    """Five incidents: arrivals after 50 s, 150 s, 400 s; one never reached; one not sent."""
    return [
        incident(
            0,
            dispatched_at=T0 + 10,
            on_scene_at=T0 + 60,
            resolved_at=T0 + 900,
            closed_at=T0 + 950,
            followup_at=T0 + 3000,
            orders=(order(sent_at=T0 + 10, accepted_at=T0 + 20, on_scene_at=T0 + 60),),
        ),
        incident(
            1,
            category="help",
            dispatched_at=T0 + 1030,
            on_scene_at=T0 + 1180,
            handed_over_at=T0 + 2000,
            closed_at=T0 + 2100,
            orders=(
                order(
                    "motorcycle",
                    unit_id="m-1",
                    sent_at=T0 + 1030,
                    accepted_at=T0 + 1070,
                    on_scene_at=T0 + 1180,
                ),
                order(sent_at=T0 + 1030, accepted_at=T0 + 1040, on_scene_at=T0 + 1300),
            ),
        ),
        incident(
            2,
            grid="G02",
            dispatched_at=T0 + 2060,
            on_scene_at=T0 + 2460,
            resolved_at=T0 + 3000,
            # closed after local midnight: not the same day
            closed_at=datetime(2026, 11, 25, 0, 30, tzinfo=TZ).timestamp(),
            orders=(order(sent_at=T0 + 2060, accepted_at=T0 + 2090, on_scene_at=T0 + 2460),),
        ),
        incident(3, grid="G02", dispatched_at=T0 + 3020, orders=(order(sent_at=T0 + 3020),)),
        incident(4, category="help"),
    ]


def test_every_figure_of_a_known_day() -> None:
    k = response_kpis(city_day(), TZ)
    assert k["incidents"] == 5
    # dispatched after 10, 30, 60, 20 s
    assert k["call_to_dispatch"] == {"n": 4, "mean_s": 30.0, "median_s": 25.0, "p90_s": 60.0}
    # accepted after 10, 40, 10, 30 s
    assert k["dispatch_to_acknowledge"] == {"n": 4, "mean_s": 22.5, "median_s": 20.0, "p90_s": 40.0}
    assert k["dispatch_to_arrival"] == {"n": 3, "mean_s": 200.0, "median_s": 150.0, "p90_s": 400.0}
    # of the four dispatched: within 1 min one, 3 min two, 5 min two (400 s is late)
    assert k["arrived_within"] == {
        "1min": {"n": 4, "rate": 0.25},
        "3min": {"n": 4, "rate": 0.5},
        "5min": {"n": 4, "rate": 0.5},
    }
    assert k["first_response_rate"] == {"n": 4, "rate": 0.75}
    # resolved on scene: two of the three ended (one was handed over)
    assert k["on_scene_resolution_rate"] == {"n": 3, "rate": 0.6667}
    assert k["same_day_closure_rate"] == {"n": 5, "rate": 0.4}
    assert k["followups_done"] == {"n": 3, "rate": 0.3333}


def test_figures_per_grid_category_and_responding_kind() -> None:
    out = kpis_by(city_day(), "grid", TZ)
    assert set(out["groups"]) == {"G01", "G02"}
    assert out["groups"]["G02"]["first_response_rate"] == {"n": 2, "rate": 0.5}
    by_kind = kpis_by(city_day(), "unit_kind", TZ)["groups"]
    # the motorcycle got to incident 1 first; incident 4 had no unit at all
    assert by_kind["motorcycle"]["incidents"] == 1
    assert by_kind["patrol_car"]["incidents"] == 3
    assert by_kind["none"]["incidents"] == 1
    by_category = kpis_by(city_day(), "category", TZ)["groups"]
    assert by_category["help"]["dispatch_to_arrival"]["mean_s"] == 150.0
    assert "groups" not in kpis_by(city_day(), None, TZ)


def test_no_incidents_no_figures_but_no_errors() -> None:
    k = response_kpis([], TZ)
    assert k["dispatch_to_arrival"] == {"n": 0, "mean_s": None, "median_s": None, "p90_s": None}
    assert k["first_response_rate"] == {"n": 0, "rate": None}


@pytest.mark.parametrize(
    ("values", "p90"), [([5.0], 5.0), ([1.0, 2.0], 2.0), ([float(v) for v in range(1, 11)], 9.0)]
)
def test_the_90th_percentile_is_nearest_rank(values, p90) -> None:
    assert durations(values)["p90_s"] == p90


def test_the_arrival_histogram_and_the_daily_trend() -> None:
    records = city_day()
    histogram = arrival_histogram(records, bin_s=60, max_s=300)
    # arrivals after 50 s, 150 s and 400 s
    assert histogram == {"bin_s": 60, "counts": [1, 0, 1, 0, 0], "over": 1}
    [day] = daily(records, TZ)
    assert day == {
        "date": "2026-11-24",
        "incidents": 5,
        "median_arrival_s": 150.0,
        "within_5min": 0.5,
    }


def test_figures_per_officer_count_each_incident_for_every_officer_sent() -> None:
    li, wang = ("A1", "Li Wei"), ("B2", "Wang Fang")
    day = [
        incident(
            0,
            dispatched_at=T0,
            on_scene_at=T0 + 100,
            orders=(order(sent_at=T0, on_scene_at=T0 + 100, crew=(li, wang)),),
        ),
        incident(
            1,
            dispatched_at=T0 + 1000,
            on_scene_at=T0 + 1300,
            orders=(order(sent_at=T0 + 1000, on_scene_at=T0 + 1300, crew=(li,)),),
        ),
        incident(2, dispatched_at=T0 + 2000, orders=(order(sent_at=T0 + 2000),)),  # no crew
    ]
    out = kpis_by(day, "officer", TZ)
    groups = out["groups"]
    assert {k: g["incidents"] for k, g in groups.items()} == {"A1": 2, "B2": 1, "none": 1}
    assert groups["A1"]["dispatch_to_arrival"]["median_s"] == 200.0
    assert out["officers"] == {"A1": "Li Wei", "B2": "Wang Fang"}
    csv = kpis_csv(out).splitlines()
    assert csv[1].startswith("all,3") and csv[2].startswith("A1 Li Wei,2")
    assert csv[4].startswith("none,1")
