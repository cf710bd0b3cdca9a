"""The edge agent's footprint on a Pi-sized budget, and how fast it drains a backlog.

1. Steady state: `fieldlink-agent` as a subprocess at ~1 Hz (gpsfake replaying
   bundg_zeus_9.log, stretched over the run) against a real mosquitto, for a few minutes.
   RSS and CPU (% of one core) are sampled from /proc every second, beside two baselines
   sampled the same way in the same run: an idle python interpreter, and a plain paho
   client publishing one QoS 1 message a second.
2. Backlog: an hour of 1 Hz fixes (3,600 rows) waits in the outbox; the broker comes up and
   the agent connects. Measured: from the broker's start, and from the first fix received,
   to the last fix at a subscriber. Beside it, the raw broker rate: a paho client publishing
   the same 3,600 fixes one message each (QoS 1, 100 in flight) to the same subscriber.

    python -m bench.agent              # 3 minutes of steady state
    python -m bench.agent --quick      # a <= 30 s smoke run
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.cli import POSITIVE, Run, add_run_options, parser
from bench.load import cpu_seconds
from bench.report import machine_facts, met, table
from edge_agent.outbox import Outbox, Uplink
from harness.services import GpsFake, end_process_group, running
from server.sim.local_broker import MosquittoProcess, free_port
from wire import Channel, Topics

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NMEA = ROOT / "tests" / "data" / "nmea"
AGENT = str(Path(sys.executable).parent / "fieldlink-agent")
UNIT = "bench-car"
TARGET_RSS_MB = 40.0
TARGET_CPU_PCT = 2.0
TARGET_DRAIN_S = 10.0
BACKLOG = 3600

IDLE_PYTHON = "import time\nwhile True: time.sleep(60)"
# A paho client doing the agent's network job and nothing else: one QoS 1 fix a second.
PAHO_1HZ = """
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho-1hz")
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_start()
while True:
    fix = {"ts": time.time(), "lat": 52.85, "lon": 5.31, "speed": 2.9, "mode": 3}
    c.publish("fieldlink/v1/units/paho-1hz/position", json.dumps(fix), qos=1)
    time.sleep(1)
"""


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) of a process, in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Footprint:
    """RSS and CPU % of one core of some processes, sampled once a second in a thread."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.rss: dict[str, list[float]] = {name: [] for name in pids}
        self.cpu: dict[str, list[float]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Footprint:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = {name: (time.monotonic(), cpu_seconds(pid)) for name, pid in self.pids.items()}
        while not self._stop.wait(1.0):
            for name, pid in self.pids.items():
                now, used = time.monotonic(), cpu_seconds(pid)
                then, before = last[name]
                self.cpu[name].append(100 * (used - before) / (now - then))
                self.rss[name].append(rss_mb(pid))
                last[name] = (now, used)


class FixCounter:
    """A subscriber on the bench unit's position topic counting fixes (batches unpacked)."""

    def __init__(self, port: int):
        self.count = 0
        self.first_at = self.last_at = math.nan
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"fieldlink/v1/units/{UNIT}/position", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        data = json.loads(message.payload)
        with self._lock:
            self.count += len(data["batch"]) if "batch" in data else 1
            self.last_at = time.monotonic()
            if math.isnan(self.first_at):
                self.first_at = self.last_at

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.count >= count

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(workdir: Path, broker_port: int, gpsd_port: int, outbox: Path) -> Path:
    config = workdir / "agent.toml"
    config.write_text(
        f'[unit]\nid = "{UNIT}"\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\nreconnect_max_s = 1.0\n'
        f"[gpsd]\nport = {gpsd_port}\n"
        f'[outbox]\npath = "{outbox}"\n'
    )
    return config


@contextmanager
def process(args: list[str], workdir: Path, name: str, **env: str) -> Iterator[subprocess.Popen]:
    output = (workdir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        args, env=dict(os.environ, **env), stdout=output, stderr=output, start_new_session=True
    )
    try:
        yield proc
    finally:
        end_process_group(proc, timeout=10)


def steady_state(workdir: Path, seconds: float) -> tuple[float, dict[str, dict[str, float]]]:
    """The agent at ~1 Hz beside the baselines: its fix rate, and per process RSS and CPU."""
    lines = len((NMEA / "bundg_zeus_9.log").read_text().splitlines())
    cycle = max(0.03, (seconds + 10) / lines)  # the log's ~1 Hz, stretched to last the run
    with (
        running(MosquittoProcess(workdir / "broker")) as broker,
        running(GpsFake(NMEA / "bundg_zeus_9.log", cycle_s=round(cycle, 4))) as gps,
    ):
        counter = FixCounter(broker.port)
        config = write_config(workdir, broker.port, gps.port, workdir / "steady.db")
        with (
            process(
                [AGENT, "--config", str(config)], workdir, "agent", GPIOZERO_PIN_FACTORY="mock"
            ) as agent,
            process([sys.executable, "-c", IDLE_PYTHON], workdir, "idle") as idle,
            process([sys.executable, "-c", PAHO_1HZ, str(broker.port)], workdir, "paho") as paho,
        ):
            time.sleep(5)  # start-up (imports, first connect) is not the steady state
            start_count = counter.count
            pids = {"agent": agent.pid, "idle python": idle.pid, "paho 1 Hz": paho.pid}
            with Footprint(pids) as footprint:
                time.sleep(seconds)
        counter.close()
    rate = (counter.count - start_count) / seconds
    log.info("steady state: the agent published %.2f fixes/s", rate)
    return rate, {
        name: {
            "rss_mean": statistics.fmean(footprint.rss[name]),
            "rss_max": max(footprint.rss[name]),
            "cpu_mean": statistics.fmean(footprint.cpu[name]),
            "cpu_max": max(footprint.cpu[name]),
        }
        for name in pids
    }


def prefill(path: Path, count: int) -> None:
    uplink = Uplink(Outbox(path, max_rows=count * 2), UNIT, Topics())
    start = time.time() - count
    for i in range(count):
        fix = {"ts": start + i, "lat": 52.85, "lon": 5.31, "speed": 2.9, "mode": 3, "acc": 8.9}
        uplink.send(Channel.POSITION, fix)
    uplink.outbox.close()


def agent_drain(workdir: Path, count: int) -> dict[str, float]:
    """Seconds from the broker's start, and from the first fix received, to the last fix."""
    db = workdir / "drain.db"
    prefill(db, count)
    broker_port = free_port()
    config = write_config(workdir, broker_port, free_port(), db)  # no gpsd: no new fixes
    with process(
        [AGENT, "--config", str(config)], workdir, "drain-agent", GPIOZERO_PIN_FACTORY="mock"
    ):
        time.sleep(2)  # the agent is up, its link is down
        broker = MosquittoProcess(workdir / "drain-broker", port=broker_port).start()
        try:
            up_at = time.monotonic()
            counter = FixCounter(broker.port)
            done = counter.wait_for(count, timeout=120)
            counter.close()
        finally:
            broker.stop()
    if not done:
        log.error("drain: only %d of %d fixes arrived", counter.count, count)
    return {
        "from_link_up": counter.last_at - up_at,
        "from_first": counter.last_at - counter.first_at,
        "received": counter.count,
    }


def raw_rate(workdir: Path, count: int) -> dict[str, float]:
    """The same fixes, one QoS 1 message each, from a plain paho client through the broker."""
    with running(MosquittoProcess(workdir / "raw-broker")) as broker:
        counter = FixCounter(broker.port)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
        client.max_inflight_messages_set(100)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        start = time.monotonic()
        for i in range(count):
            fix = {"ts": 1e9 + i, "lat": 52.85, "lon": 5.31, "speed": 2.9, "mode": 3, "acc": 8.9}
            client.publish(f"fieldlink/v1/units/{UNIT}/position", json.dumps(fix), qos=1)
        counter.wait_for(count, timeout=120)
        client.loop_stop()
        client.disconnect()
        counter.close()
    return {"seconds": counter.last_at - start, "received": counter.count}


def report(
    rate: float,
    steady: dict[str, dict[str, float]],
    drain: dict[str, float],
    raw: dict[str, float],
    seconds: float,
) -> None:
    print(machine_facts())
    print(f"\nsteady state, {seconds:.0f} s sampled once a second (RSS MB, CPU % of one core)")
    rows = [
        [
            name,
            f"{m['rss_mean']:.1f}",
            f"{m['rss_max']:.1f}",
            f"{m['cpu_mean']:.2f}",
            f"{m['cpu_max']:.1f}",
        ]
        for name, m in steady.items()
    ]
    print(table(["process", "RSS mean", "RSS max", "CPU mean", "CPU max"], rows))
    print(f"agent published {rate:.2f} fixes/s")
    print(f"\nbacklog of {BACKLOG} fixes (an hour at 1 Hz)")
    print(
        table(
            ["path", "seconds", "received"],
            [
                [
                    "agent, from the broker's start",
                    f"{drain['from_link_up']:.2f}",
                    drain["received"],
                ],
                ["agent, first to last fix", f"{drain['from_first']:.2f}", drain["received"]],
                ["raw paho, 1 message a fix", f"{raw['seconds']:.2f}", raw["received"]],
            ],
        )
    )
    agent = steady["agent"]
    print("\ntargets:")
    print(
        f"  RSS < {TARGET_RSS_MB:.0f} MB: max {agent['rss_max']:.1f} MB "
        f"{met(agent['rss_max'] < TARGET_RSS_MB)}"
    )
    print(
        f"  CPU < {TARGET_CPU_PCT:.0f} % of one core: mean {agent['cpu_mean']:.2f} % "
        f"{met(agent['cpu_mean'] < TARGET_CPU_PCT)}"
    )
    print(
        f"  hour of backlog < {TARGET_DRAIN_S:.0f} s: {drain['from_link_up']:.2f} s "
        f"{met(drain['from_link_up'] < TARGET_DRAIN_S)}"
    )


def main(argv: list[str] | None = None) -> int:
    options = parser("bench.agent", __doc__.split("\n")[0], quick="a <= 30 s smoke run")
    options.add_argument("--minutes", type=POSITIVE, default=3.0, help="steady state to sample")
    add_run_options(options)
    args = options.parse_args(argv)
    seconds = 12.0 if args.quick else args.minutes * 60
    with Run(args, "agent") as run:
        rate, steady = steady_state(run.workdir, seconds)
        drain = agent_drain(run.workdir, BACKLOG)
        raw = raw_rate(run.workdir, BACKLOG)
        report(rate, steady, drain, raw, seconds)
        return 0 if drain["received"] >= BACKLOG else 1
    return 1  # interrupted


if __name__ == "__main__":
    sys.exit(main())
