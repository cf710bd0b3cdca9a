"""After a broker outage: how soon the server and the agent are back, and a panic pressed
during it is in the server's store.

A real mosquitto, a real `fieldlink server` and the agent's own outbox and publisher (in this
process) for one guard post. The broker is stopped for D seconds; during the outage the post
presses its panic (it waits in the outbox). Measured from the broker's return (its port
answers again): the server's broker sessions back (`/healthz` says `broker`), the agent's
session back, and the panic confirmed by the server's receipt (the outbox empty).

Baselines in the same run, through the same outages: a paho client with paho's own default
backoff (1 s doubling to 120 s), and one with the backoff the server had before (1 s doubling
to 30 s).

    python -m bench.outage            # outages of 5, 20 and 60 s, three of each
    python -m bench.outage --quick    # a <= 60 s smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.cli import POSITIVE_INT, Run, add_mode, add_run_options, parser
from bench.load import provision_units
from bench.report import machine_facts, table
from edge_agent.config import MqttSettings, OutboxSettings, Settings, UnitSettings
from edge_agent.outbox import Outbox, Uplink
from edge_agent.publisher import Publisher
from harness.server import ServerProcess
from harness.services import running
from server.sim.local_broker import MosquittoProcess, wait_for_port
from wire import Channel, Topics

TARGET_SERVER_S = 2.0
TARGET_AGENT_S = 5.0
POST = "bench-post"


class Baseline:
    """A paho client that only reconnects, with a given backoff: what the figures compare to."""

    def __init__(self, port: int, max_delay: int):
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"baseline-{uuid.uuid4().hex[:6]}"
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=max_delay)
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Outages:
    seconds: float
    server: list[float] = field(default_factory=list)
    agent: list[float] = field(default_factory=list)
    panic_stored: list[float] = field(default_factory=list)
    paho_default: list[float] = field(default_factory=list)
    max_30: list[float] = field(default_factory=list)


def _until(check, limit_s: float = 180.0) -> float:
    """Seconds until `check()` holds (polled every 10 ms), or NaN."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.01)
    return float("nan")


def _one_outage(
    broker, server, publisher, outbox, baselines, seconds: float, result: Outages
) -> None:
    broker.stop()
    time.sleep(0.5)
    publisher.uplink.send(
        Channel.ALARM, {"alarm_id": uuid.uuid4().hex, "ts": time.time(), "kind": "panic"}
    )
    time.sleep(max(0.0, seconds - 0.5))
    broker.start()
    wait_for_port(broker.port)
    back = time.monotonic()
    waits = {
        "server": lambda: server.health().get("broker"),
        "agent": lambda: publisher.connected,
        "panic_stored": lambda: outbox.depth() == 0,
        "paho_default": baselines[0].connected.is_set,
        "max_30": baselines[1].connected.is_set,
    }
    pending = dict(waits)
    while pending and time.monotonic() - back < 180:
        for name, check in list(pending.items()):
            if check():
                getattr(result, name).append(time.monotonic() - back)
                del pending[name]
        time.sleep(0.01)


def run(args: argparse.Namespace, workdir: Path, results: list[Outages]) -> None:
    """Each outage length `repeats` times; `results` gets each length's as it is done."""
    durations = [3.0] if args.quick else [float(d) for d in args.outages.split(",")]
    repeats = 1 if args.quick else args.repeats
    db_url = f"sqlite:///{workdir / 'fieldlink.db'}"
    provision_units(
        db_url,
        [(POST, "guard_post"), ("bench-car", "patrol_car")],
        {"bench-car": (35.40, 116.58), POST: (35.401, 116.58)},
    )
    with running(MosquittoProcess(workdir / "broker")) as broker:
        server = ServerProcess(
            workdir, broker.url, args.mode, db_url=db_url, position_stale_s=1e9
        ).start()
        settings = Settings(
            unit=UnitSettings(id=POST, kind="guard_post"),
            mqtt=dataclasses.replace(MqttSettings(), url=broker.url, client_id=f"agent-{POST}"),
            outbox=OutboxSettings(path=str(workdir / "outbox.db")),
        )
        outbox = Outbox(settings.outbox.path)
        publisher = Publisher(settings, Uplink(outbox, POST, Topics()), version="bench")
        publisher.start()
        baselines = [Baseline(broker.port, 120), Baseline(broker.port, 30)]
        try:
            _until(lambda: publisher.connected and all(b.connected.is_set() for b in baselines))
            for seconds in durations:
                result = Outages(seconds)
                for _ in range(repeats):
                    _one_outage(broker, server, publisher, outbox, baselines, seconds, result)
                results.append(result)
        finally:
            for baseline in baselines:
                baseline.close()
            publisher.stop()
            outbox.close()
            server.stop()


def report(results: list[Outages], mode: str) -> str:
    def worst(values: list[float]) -> str:
        return f"{max(values):.2f}" if values else "-"

    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"

    rows = [
        [
            f"{r.seconds:.0f}",
            len(r.server),
            f"{median(r.server)} / {worst(r.server)}",
            f"{median(r.agent)} / {worst(r.agent)}",
            f"{median(r.panic_stored)} / {worst(r.panic_stored)}",
            f"{median(r.paho_default)} / {worst(r.paho_default)}",
            f"{median(r.max_30)} / {worst(r.max_30)}",
        ]
        for r in results
    ]
    server_worst = max((max(r.server) for r in results if r.server), default=float("nan"))
    agent_worst = max((max(r.agent) for r in results if r.agent), default=float("nan"))
    return "\n".join(
        [
            f"# bench.outage ({mode}; {machine_facts()})",
            "seconds after the broker is back (median / worst):",
            table(
                [
                    "outage s",
                    "runs",
                    "server",
                    "agent",
                    "panic stored",
                    "paho default",
                    "1-30 s backoff",
                ],
                rows,
            ),
            f"target: server back within {TARGET_SERVER_S:.0f} s (worst {server_worst:.2f} s), "
            f"agent within {TARGET_AGENT_S:.0f} s (worst {agent_worst:.2f} s)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    options = parser("bench.outage", __doc__.splitlines()[0], quick="a <= 60 s smoke run")
    options.add_argument("--outages", default="5,20,60", help="outage lengths in seconds [5,20,60]")
    options.add_argument(
        "--repeats", type=POSITIVE_INT, default=3, help="outages of each length [3]"
    )
    add_mode(options, "--mode", "the server's")
    add_run_options(options)
    args = options.parse_args(argv)
    results: list[Outages] = []
    with Run(args, "outage") as bench:
        run(args, bench.workdir, results)
    print(report(results, args.mode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
