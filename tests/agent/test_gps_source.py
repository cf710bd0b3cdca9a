"""The GPS reader against a real gpsd fed by gpsfake, and its decisions as plain functions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_agent.gps_source import GpsReader, to_fix
from harness.services import nmea_slice
from harness.waiting import eventually

LOG = "bundg_zeus_9.log"


def rmc_times(log: Path) -> list[float]:
    """Epoch times of the log's valid RMC sentences: the fix times a receiver reported."""
    times = []
    for line in log.read_text().splitlines():
        fields = line.split(",")
        if line.startswith("$GPRMC") and fields[2] == "A":
            stamp = datetime.strptime(fields[1][:6] + fields[9], "%H%M%S%d%m%y")
            times.append(stamp.replace(tzinfo=UTC).timestamp())
    return sorted(set(times))


class ReaderThread:
    """Runs GpsReader.fixes() in a thread, as the agent does, collecting what it yields."""

    def __init__(self, reader: GpsReader):
        self.reader, self.fixes, self.stop_event = reader, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for fix in self.reader.fixes(self.stop_event):
            self.fixes.append(fix)

    def __enter__(self) -> ReaderThread:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop_event.set()
        self.reader.close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def fast_reader():
    def make(port: int) -> GpsReader:
        # polls well inside one replayed second
        return GpsReader("127.0.0.1", port, poll_s=0.03)

    return make


def test_each_fix_time_of_a_replayed_log_is_published_once(
    tmp_path, nmea_dir, gpsfake, fast_reader
):
    log = nmea_slice(nmea_dir / LOG, tmp_path / "slice.log", 0, 500)
    expected = rmc_times(log)
    fake = gpsfake(log)

    with ReaderThread(fast_reader(fake.port)) as run:
        eventually(
            lambda: run.fixes and run.fixes[-1]["ts"] >= expected[-1] - 1,
            timeout=30,
            what="the end of the replay",
        )

    times = [fix["ts"] for fix in run.fixes]
    assert times == sorted(set(times)), "a fix time twice, or out of order"
    assert set(times) <= set(expected), "a time that is not one of the log's RMC times"
    # gpsd needs a moment to sync on the log's first sentences; from the first fix on,
    # every replayed second must be there (one may slip by under a loaded CI machine)
    replayed = [t for t in expected if t >= times[0]]
    assert len(times) >= len(replayed) - 1 and len(times) >= len(expected) // 2, (
        len(times),
        len(replayed),
        len(expected),
    )
    assert all(
        fix["mode"] >= 2 and 52 < fix["lat"] < 53 and 5 < fix["lon"] < 6 for fix in run.fixes
    )


def test_reader_survives_gpsd_going_away_and_coming_back(tmp_path, nmea_dir, gpsfake, fast_reader):
    first = nmea_slice(nmea_dir / LOG, tmp_path / "first.log", 0, 300)
    second = nmea_slice(nmea_dir / LOG, tmp_path / "second.log", 1000, 1300)
    fake = gpsfake(first)

    with ReaderThread(fast_reader(fake.port)) as run:
        eventually(lambda: len(run.fixes) >= 3, timeout=20, what="fixes from the first gpsd")
        fake.stop()
        eventually(lambda: run.reader.fix_mode == 0, what="the reader to notice")
        before = len(run.fixes)
        gpsfake(second, port=fake.port)
        eventually(
            lambda: len(run.fixes) >= before + 3, timeout=20, what="fixes from the restarted gpsd"
        )

    times = [fix["ts"] for fix in run.fixes]
    assert times == sorted(set(times))
    assert set(times[before:]) <= set(rmc_times(second))


def _report(**overrides) -> SimpleNamespace:
    report = dict(
        mode=3,
        time="2018-08-20T09:47:40.000Z",
        lat=52.85,
        lon=5.31,
        hspeed=2.9,
        track=235.1,
        alt=-4.0,
        error={"x": 7.5, "y": 8.9, "v": 20.7},
    )
    return SimpleNamespace(**(report | overrides))


def test_to_fix_converts_gpsd_fields():
    assert to_fix(_report()) == {
        "ts": 1534758460.0,
        "lat": 52.85,
        "lon": 5.31,
        "speed": 2.9,
        "heading": 235.1,
        "alt": -4.0,
        "acc": 8.9,
        "mode": 3,
    }


def test_to_fix_needs_a_time_and_drops_gpsd_py3_placeholders():
    assert to_fix(_report(time="")) is None  # gpsd 3.22's early mode 3 without a time
    assert to_fix(_report(mode=2))["mode"] == 2  # the fix filters judge the mode
    fix = to_fix(_report(alt=0.0, hspeed=0, error={}))
    assert "alt" not in fix and "heading" not in fix and "acc" not in fix
