"""Every NMEA log we have, replayed by gpsfake into a real gpsd, read as the agent reads it.

What a correct reader does differs per log, so each test says it: a boat under way moves,
a receiver on a desk stays put, a cold boot gives nothing, garbage gives no crash and only
valid fixes. Old logs have a twist: gpsd 3.22 takes their dates (2014, 2015) for a GPS week
rollover and dates the fixes 1024 weeks later, in 2034-2035, which the future filter drops.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from edge_agent.config import FiltersSettings, GpsdSettings
from edge_agent.fixes import FixStage
from edge_agent.gps_source import GpsReader
from geodesy import fix_distance_m as distance_m
from harness.services import nmea_slice
from wire import Channel, encode

RATE = GpsdSettings(publish_interval_s=1.0)
NO_FUTURE_FILTER = FiltersSettings(max_future_s=0)


@dataclasses.dataclass
class Replay:
    raw: list[dict]  # each new fix time gpsd gave
    published: list[dict]  # what the agent would publish (default filters and rate)
    lenient: list[dict]  # the same without the future filter
    stage: FixStage
    modes: set[int]  # fix modes the reader saw while polling


@pytest.fixture
def replay(tmp_path, gps_replay) -> Callable[..., Replay]:
    def run(log: Path, cycle_s: float, lines: int | None = None) -> Replay:
        if lines:
            log = nmea_slice(log, tmp_path / log.name, 0, lines)
        fake = gps_replay(log, cycle_s)
        reader = GpsReader("127.0.0.1", fake.port, poll_s=0.03)
        result = Replay([], [], [], FixStage(FiltersSettings(), RATE), set())
        lenient = FixStage(NO_FUTURE_FILTER, RATE)
        stop = threading.Event()

        def read() -> None:
            for fix in reader.fixes(stop):
                result.raw.append(fix)
                if result.stage.offer(fix):
                    result.published.append(fix)
                if lenient.offer(fix):
                    result.lenient.append(fix)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        # gpsfake keeps its gpsd up after the one pass: wait out the log's length, recording
        # the modes gpsd reports meanwhile
        deadline = time.monotonic() + len(log.read_text().splitlines()) * cycle_s + 2
        while time.monotonic() < deadline:
            result.modes.add(reader.fix_mode)
            time.sleep(0.05)
        stop.set()
        reader.close()
        thread.join(timeout=10)
        return result

    return run


def spread_m(fixes: list[dict]) -> float:
    return max(distance_m(fixes[0], fix) for fix in fixes)


def assert_clean(fixes: list[dict]) -> None:
    """In time order, each time once, and each one a fix the wire protocol accepts."""
    times = [fix["ts"] for fix in fixes]
    assert times == sorted(set(times))
    for fix in fixes:
        encode(Channel.POSITION, fix)


def test_bundg_zeus_9_boat_under_way_is_moving(nmea_dir, replay):
    run = replay(nmea_dir / "bundg_zeus_9.log", cycle_s=0.01, lines=700)
    assert len(run.published) >= 10 and run.stage.filtered == 0
    assert_clean(run.published)
    assert all(52.84 < f["lat"] < 52.86 and 5.30 < f["lon"] < 5.32 for f in run.published)
    moving = run.published[1:]  # the first RMC of the log has no speed yet
    assert all(2 < f["speed"] < 4 and 220 < f["heading"] < 245 for f in moving)
    assert spread_m(run.published) > 30
    assert all(f["acc"] > 0 for f in moving)  # gpsd's epx/epy from the GGA's HDOP


def test_ublox_neo_m9n_on_a_desk_is_stationary_and_accurate(nmea_dir, replay):
    run = replay(nmea_dir / "ublox-neo-m9n-nmea.log", cycle_s=0.01, lines=500)
    assert len(run.published) >= 10 and run.stage.filtered == 0
    assert_clean(run.published)
    assert spread_m(run.published) < 5
    # gpsd may send a cycle's first fix before its error estimate (more often on a busy
    # machine): such a fix carries no accuracy, and every one that does is within 5 m
    assert all(f["speed"] < 0.5 and f.get("acc", 0) < 5 for f in run.published)
    assert sum("acc" in f for f in run.published) >= len(run.published) * 0.8


def test_quectel_eg25_g_reports_nothing_until_its_first_fix(nmea_dir, replay):
    run = replay(nmea_dir / "quectel-eg25-g.log", cycle_s=0.008)
    first_fix = 1662923703.0  # 2022-09-11 19:15:03, after about a minute without a fix
    assert run.published and all(f["ts"] >= first_fix for f in run.published)
    assert 1 in run.modes  # gpsd said "no fix" before
    assert_clean(run.published)
    assert spread_m(run.published) < 500
    for before, after in pairwise(run.published):
        # the receiver claims up to 93 m/s in places; the published track never jumps
        assert distance_m(before, after) / (after["ts"] - before["ts"]) <= 70


def test_gp_320fw_cold_boot_gives_no_position(nmea_dir, replay):
    run = replay(nmea_dir / "gp-320fw-2019-04-07-coldboot.log", cycle_s=0.03)
    # broken checksums, a reboot, void RMCs at 0,0 with garbage dates: never a fix
    assert run.raw == [] and run.published == []
    assert max(run.modes) <= 1


def test_nmea_fuzzy_cases_give_no_crash_and_only_valid_fixes(nmea_dir, replay):
    run = replay(nmea_dir / "nmea-fuzzy-cases.log", cycle_s=0.1)
    assert run.published
    assert_clean(run.published)
    assert all(41.57 < f["lat"] < 41.58 and -93.76 < f["lon"] < -93.74 for f in run.published)
    # fix times 0.1 s apart are thinned to the publish interval
    times = [f["ts"] for f in run.published]
    assert all(b - a >= 1 for a, b in pairwise(times))


@pytest.mark.parametrize(
    ("log", "cycle_s", "where"),
    [
        ("bu353s4.log", 0.03, (-37.785, 175.315)),  # 2014, Hamilton NZ
        ("hab-gpspi.log", 0.1, (48.069, 16.359)),  # 2015, an NTP server near Vienna
    ],
)
def test_old_stationary_logs_are_future_dated_by_gpsd_and_dropped(
    nmea_dir, replay, log, cycle_s, where
):
    run = replay(nmea_dir / log, cycle_s=cycle_s)
    assert run.raw and run.published == []
    assert run.stage.dropped == {"future": len(run.raw)}
    # without the future filter: a receiver that stays put, where the log says it is
    assert_clean(run.lenient)
    here = {"lat": where[0], "lon": where[1]}
    assert all(distance_m(here, fix) < 100 for fix in run.lenient)
    assert spread_m(run.lenient) < 20
