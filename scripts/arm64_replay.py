"""A gpsfake replay with the installed agent, for scripts/arm64-check.sh: a broker, a real
receiver's log at 1 line per 0.1 s, the agent for 60 s; prints fixes received on the broker
and the agent's peak RSS and CPU time. Usage: python arm64_replay.py PATH/TO/fieldlink-agent
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from harness.services import GpsFake, running
from server.sim.local_broker import MosquittoProcess, end_process

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "tests" / "data" / "nmea" / "bundg_zeus_9.log"
RUN_S = 60.0


def proc_figures(pid: int) -> tuple[int, float]:
    """(peak RSS in KiB, user + system CPU seconds) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return peak, (int(fields[11]) + int(fields[12])) / ticks


def main(agent: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="arm64-replay-"))
    with (
        running(MosquittoProcess(work / "broker")) as broker,
        running(GpsFake(LOG, cycle_s=0.1)) as gps,
    ):
        config = work / "agent.toml"
        config.write_text(
            f'[unit]\nid = "car-arm64"\n[mqtt]\nurl = "{broker.url}"\n'
            f'[gpsd]\nport = {gps.port}\n[outbox]\npath = "{work / "outbox.db"}"\n'
            '[gpio]\npin_factory = "mock"\n'
        )
        positions: list[bytes] = []
        listener = mqtt.Client(CallbackAPIVersion.VERSION2)
        listener.on_message = lambda _c, _u, message: positions.append(message.payload)
        listener.connect("127.0.0.1", broker.port)
        listener.subscribe("fieldlink/v1/units/car-arm64/position", qos=1)
        listener.loop_start()
        started = time.monotonic()
        proc = subprocess.Popen([agent, "--config", str(config)], stderr=subprocess.DEVNULL)
        try:
            while time.monotonic() - started < RUN_S and proc.poll() is None:
                time.sleep(1.0)
            rss_kib, cpu_s = proc_figures(proc.pid)
        finally:
            end_process(proc)
            listener.loop_stop()
    elapsed = time.monotonic() - started
    print(
        f"positions on the broker: {len(positions)} in {elapsed:.0f} s; agent peak RSS"
        f" {rss_kib / 1024:.1f} MiB, CPU {cpu_s:.1f} s ({100 * cpu_s / elapsed:.1f} % of a core)"
    )
    sys.exit(0 if positions else 1)


if __name__ == "__main__":
    main(sys.argv[1])
