"""Time from GPS: until the system clock is synchronised, fixes are judged and messages
stamped by the newest fix's GPS time plus the monotonic clock, so a Pi that boots offline
with its clock years off still reports."""

from __future__ import annotations

import time

from edge_agent.clock import GpsAnchor, UnitClock, clock_source, kernel_synced, unit_time
from harness.services import nmea_slice
from harness.waiting import eventually
from tests.agent.conftest import replaying_agent

YEARS = 17 * 365 * 86400  # the log is from 2018: a clock 17 years behind reads 2001


def test_unit_time_is_the_system_clock_once_synced_and_gps_time_before():
    anchor = GpsAnchor(gps_ts=1_534_758_457.0, mono=100.0)
    assert unit_time(wall=5.0, mono=130.0, synced=True, anchor=anchor) == 5.0
    assert unit_time(wall=5.0, mono=130.0, synced=False, anchor=anchor) == 1_534_758_487.0
    assert unit_time(wall=5.0, mono=130.0, synced=False, anchor=None) == 5.0  # nothing better
    assert [clock_source(True, anchor), clock_source(False, anchor), clock_source(False, None)] == [
        "system",
        "gps",
        "unsynced",
    ]


def test_the_clock_remembers_when_it_was_last_synced():
    state = {"synced": True}
    clock = UnitClock(wall=lambda: 1000.0, mono=lambda: 5.0, synced=lambda: state["synced"])
    assert clock.now() == 1000.0 and clock.synced_at == 1000.0
    state["synced"] = False
    clock.observe({"ts": 2000.0})
    assert clock.now() == 2000.0 and clock.source() == "gps" and clock.synced_at == 1000.0


def test_the_kernel_is_asked_without_privileges():
    assert isinstance(kernel_synced(), bool)


def _run(tmp_path, mosquitto, observer, gpsfake, nmea_dir, clock: UnitClock):
    fake = gpsfake(nmea_slice(nmea_dir / "bundg_zeus_9.log", tmp_path / "s.log", 0, 400))
    obs = observer(mosquitto.url)
    agent = replaying_agent(tmp_path, mosquitto.url, fake.port, clock)
    agent.start()
    return agent, obs


def test_a_pi_booted_offline_with_its_clock_years_behind_reports_by_gps_time(
    tmp_path, mosquitto, observer, gpsfake, mock_gpio, nmea_dir
):
    clock = UnitClock(wall=lambda: time.time() - YEARS, synced=lambda: False)
    agent, obs = _run(tmp_path, mosquitto, observer, gpsfake, nmea_dir, clock)
    try:
        eventually(lambda: len(obs.fixes()) >= 3, timeout=20, what="positions")
        mock_gpio.pin(17).drive_low()
        eventually(lambda: obs.on("alarm"), what="the alarm")
        mock_gpio.pin(17).drive_high()
        eventually(lambda: any(h.get("clock") == "gps" for h in obs.on("health")), what="health")
    finally:
        agent.stop()
    [alarm] = obs.on("alarm")
    newest = obs.fixes()[-1]["ts"]
    # stamped by GPS time (2018), not by the clock (2001): the server counts the press right
    assert abs(alarm["ts"] - newest) < 60
    health = [h for h in obs.on("health") if h.get("clock") == "gps"][-1]
    assert abs(health["ts"] - newest) < 60 and health["clock_synced_at"] is None


def test_the_same_clock_trusted_drops_every_fix_as_from_the_future(
    tmp_path, mosquitto, observer, gpsfake, mock_gpio, nmea_dir
):
    # what the agent did before it knew whether its clock was set: the control case
    clock = UnitClock(wall=lambda: time.time() - YEARS, synced=lambda: True)
    agent, obs = _run(tmp_path, mosquitto, observer, gpsfake, nmea_dir, clock)
    try:
        eventually(lambda: agent.fixes.dropped["future"] >= 5, timeout=20, what="fixes judged")
        eventually(lambda: obs.on("health"), what="health")
    finally:
        agent.stop()
    assert obs.fixes() == []
    assert obs.on("health")[-1]["clock"] == "system"
