"""systemd's notify protocol: the real agent program says READY=1, then pings the watchdog."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from edge_agent.watchdog import SystemdNotifier
from server.sim.local_broker import end_process
from tests.agent.conftest import UNIT

AGENT = str(Path(sys.executable).parent / "fieldlink-agent")


def test_outside_systemd_notifying_does_nothing() -> None:
    quiet = SystemdNotifier(env={})
    assert quiet.interval_s is None
    quiet.notify("READY=1")  # no socket, no error


def test_the_watchdog_is_pinged_at_half_its_timeout() -> None:
    assert SystemdNotifier(env={"WATCHDOG_USEC": "60000000"}).interval_s == 30.0


def test_the_agent_reports_ready_and_keeps_the_watchdog_fed(tmp_path, mosquitto) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.settimeout(20)
        config = tmp_path / "agent.toml"
        config.write_text(
            f'[unit]\nid = "{UNIT}"\n[mqtt]\nurl = "{mosquitto.url}"\n'
            f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        )
        env = dict(
            os.environ, GPIOZERO_PIN_FACTORY="mock", NOTIFY_SOCKET=path, WATCHDOG_USEC="400000"
        )
        agent = subprocess.Popen(
            [AGENT, "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            said = [systemd.recv(64).decode() for _ in range(3)]
        finally:
            assert end_process(agent, signal.SIGTERM, timeout=20) == 0
    assert said == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]
