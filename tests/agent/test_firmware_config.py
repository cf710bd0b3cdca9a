"""The Pi's system files that ship beside the agent: chrony's GPS config parses in chronyd
itself, and the service's restart limits and the hardware watchdog stay within what a Pi
takes."""

from __future__ import annotations

import subprocess
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_config"


def settings_of(path: Path) -> dict[str, str]:
    """KEY=value lines of a systemd file (the last one of a key wins, as in systemd)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_chronyd_reads_the_gps_config_and_steps_a_clock_that_is_far_off():
    config = FIRMWARE / "chrony" / "fieldlink-gps.conf"
    parsed = subprocess.run(
        ["/usr/sbin/chronyd", "-p", "-f", str(config)], capture_output=True, text=True, timeout=10
    )
    assert parsed.returncode == 0, parsed.stderr
    directives = parsed.stdout.splitlines()
    assert any(d.startswith("refclock SHM 0 refid GPS") for d in directives)
    assert "makestep 1 -1" in directives  # any time, not only at start: a Pi booted offline


def test_the_agent_service_restarts_then_reboots_and_the_hardware_watchdog_fits_a_pi():
    service = settings_of(FIRMWARE / "fieldlink-agent.service")
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) <= 60
    assert service["Restart"] == "always" and service["StartLimitAction"] == "reboot"
    assert int(service["StartLimitBurst"]) * int(service["RestartSec"]) < int(
        service["StartLimitIntervalSec"]
    )  # the limit can be reached within its interval
    watchdog = settings_of(FIRMWARE / "systemd" / "fieldlink-watchdog.conf")
    assert watchdog["RuntimeWatchdogSec"] == "15s"  # the BCM2835 watchdog's longest timeout
