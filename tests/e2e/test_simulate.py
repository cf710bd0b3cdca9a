"""`fieldlink simulate`: a small city's evening through a real mosquitto and the real server,
once per dispatch policy on the same calls; and its clock and period arithmetic, pure."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from harness.server import FIELDLINK
from server.runtime.clock import Clock
from server.sim.demo import DemoError
from server.sim.simulate import (
    FIGURES,
    Agenda,
    DayOptions,
    check_options,
    clock_for,
    figures_table,
    period_start,
)

TZ = ZoneInfo("Asia/Shanghai")


def test_the_faster_clock_reads_the_period_start_when_the_set_up_is_done() -> None:
    start = datetime(2026, 11, 24, 19, 0, tzinfo=TZ).timestamp()
    clock = clock_for(start, 20, lead_wall_s=10, wall_now=1_000_000.0)
    assert clock.at(1_000_010.0) == pytest.approx(start)
    assert clock.at(1_000_013.0) - clock.at(1_000_010.0) == pytest.approx(60)  # 3 s: a minute
    assert clock_for(start, 1, 10, 1_000_000.0) == Clock()  # no speed-up: wall time itself
    assert Clock().at(123.5) == 123.5


def test_the_period_starts_at_the_hour_given_on_the_command_centres_day() -> None:
    today = datetime(2026, 11, 24, 15, 42, 7, tzinfo=TZ)
    assert period_start("18:30", TZ, today) == datetime(2026, 11, 24, 18, 30, tzinfo=TZ).timestamp()


def test_the_agenda_gives_what_is_due_in_time_order_and_ties_as_added() -> None:
    agenda = Agenda()
    agenda.add(30.0, "plan", "i2")
    agenda.add(10.0, "call", "c1")
    agenda.add(30.0, "wrap_up", "i1")
    agenda.add(99.0, "call", "c9")
    assert list(agenda.due(30.0)) == [("call", "c1"), ("plan", "i2"), ("wrap_up", "i1")]
    assert list(agenda.due(50.0)) == []
    assert list(agenda.due(99.0)) == [("call", "c9")]


def test_bad_options_are_refused_with_what_to_use() -> None:
    with pytest.raises(DemoError) as refused:
        check_options(DayOptions(hours=0, speedup=1000, start="25:00"), ["nearest", "fastest"])
    message = str(refused.value)
    assert "--hours must be above 0" in message and "--speedup must be between 1 and 600" in message
    assert "unknown policy fastest: use recommendation, nearest, own_grid" in message
    assert "--start '25:00': use HH:MM" in message
    check_options(DayOptions(), ["recommendation", "own_grid"])  # the defaults are fine


def test_the_table_shows_times_as_minutes_and_rates_as_percentages() -> None:
    figures = {
        "incidents": 3,
        "call_to_dispatch": {"median_s": 64.0},
        "dispatch_to_acknowledge": {"median_s": None},
        "dispatch_to_arrival": {"mean_s": 200.0, "median_s": 185.5, "p90_s": 301.0},
        "arrived_within": {k: {"rate": 0.5, "n": 2} for k in ("1min", "3min", "5min")},
        **{
            k: {"rate": 1.0, "n": 2}
            for k in (
                "first_response_rate",
                "on_scene_resolution_rate",
                "same_day_closure_rate",
                "followups_done",
            )
        },
    }
    table = figures_table({"nearest": {"kpis": {"all": figures}}, "own_grid": {"kpis": {}}})
    cells = table.columns[1]._cells
    assert cells[:5] == ["-", "3", "1:04.0", "-", "3:20.0"] and cells[7] == "50.0%"
    assert table.columns[2]._cells == ["-"] * (len(FIGURES) + 1)


@pytest.mark.timeout(400)  # three runs of about 35 s each, set-up and stops included
def test_a_small_citys_evening_under_each_policy(tmp_path) -> None:
    """Three policies, the same 40 minutes of calls; the figures come from the server's own
    records, in simulated minutes (at 240x, wall-clock times would read a second or less)."""
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [
            FIELDLINK,
            "simulate",
            *("--grids", "4", "--cars-per-grid", "3", "--posts", "4"),
            *("--start", "19:00", "--hours", "0.67", "--speedup", "240"),
            *("--calls-per-day", "600", "--seed", "3", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
        env={**os.environ, "FIELDLINK_DEMO_BROKER": "mosquitto"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for policy in ("recommendation", "nearest", "own_grid"):
        assert f"policy: {policy}" in run.stdout
    assert "The day's figures" in run.stdout and "arrived within 5 min" in run.stdout
    runs = json.loads(out.read_text())["runs"]
    counts = {policy: r["kpis"]["all"]["incidents"] for policy, r in runs.items()}
    assert {r["calls"] for r in runs.values()} == set(counts.values()), runs  # every call
    assert len(set(counts.values())) == 1 and counts["nearest"] >= 10, counts  # the same calls
    for policy, r in runs.items():
        kpis = r["kpis"]["all"]
        assert kpis["first_response_rate"]["rate"] >= 0.8, (policy, kpis)
        assert kpis["dispatch_to_arrival"]["median_s"] > 20, (policy, kpis)
        assert kpis["call_to_dispatch"]["median_s"] >= 25, (policy, kpis)  # the call-taking
        assert r["fleet"]["acks"] > counts[policy]
        assert r["server_errors"] == 0, policy
