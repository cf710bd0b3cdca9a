"""The assembled agent, end to end: gpsd -> positions, panic -> alarm, health, clean stop."""

from __future__ import annotations

from edge_agent.app import Agent
from edge_agent.config import GpsdSettings, HealthSettings
from harness.services import nmea_slice
from harness.waiting import eventually
from tests.agent.conftest import agent_settings, replaying_agent


def test_agent_publishes_positions_alarm_health_and_goes_offline_on_stop(
    tmp_path, mosquitto, observer, gpsfake, mock_gpio, nmea_dir
):
    fake = gpsfake(nmea_slice(nmea_dir / "bundg_zeus_9.log", tmp_path / "s.log", 0, 400))
    obs = observer(mosquitto.url)
    agent = replaying_agent(tmp_path, mosquitto.url, fake.port)
    agent.start()
    try:
        eventually(lambda: len(obs.fixes()) >= 2, timeout=20, what="positions")
        mock_gpio.pin(17).drive_low()
        eventually(lambda: obs.on("alarm"), what="the alarm")
        mock_gpio.pin(17).drive_high()
        eventually(lambda: obs.on("health"), what="a health message")
    finally:
        agent.stop()

    [alarm] = obs.on("alarm")
    assert alarm["kind"] == "panic" and alarm["fix"]["ts"] <= obs.fixes()[-1]["ts"]
    health = obs.on("health")[-1]
    assert health["fix_mode"] >= 2 and health["uptime_s"] > 0 and "link" in health
    assert [s["online"] for s in obs.on("state")] == [True, False]  # said goodbye, not the will
    times = [p["ts"] for p in obs.fixes()]
    assert times == sorted(set(times))


def test_cold_start_without_a_fix_reports_health_and_never_a_position(
    tmp_path, mosquitto, observer, gps_replay, mock_gpio, nmea_dir
):
    # a receiver rebooting with broken sentences, void RMCs at 0,0 and garbage dates
    fake = gps_replay(nmea_dir / "gp-320fw-2019-04-07-coldboot.log", 0.03)
    settings = agent_settings(
        tmp_path,
        mosquitto.url,
        gpsd=GpsdSettings(port=fake.port),
        health=HealthSettings(interval_s=0.5),
    )
    obs = observer(mosquitto.url)
    agent = Agent(settings)
    agent.start()
    try:
        eventually(lambda: len(obs.on("health")) >= 8, timeout=20, what="health for 4 s")
    finally:
        agent.stop()

    assert obs.fixes() == []
    assert all(h["fix_mode"] <= 1 and h["outbox"] >= 0 for h in obs.on("health"))
    assert [s["online"] for s in obs.on("state")] == [True, False]
