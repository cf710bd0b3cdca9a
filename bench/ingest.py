"""Ingest throughput: simulated units -> mosquitto -> `fieldlink server` -> SQLite.

For each scenario the same load generator runs twice or more, each time against a fresh
mosquitto:

* `raw`: a plain paho subscriber (QoS 1, the server's topic filters) that only counts: what
  this machine can move from publishers through the broker to one subscriber;
* once per async mode: a real `fieldlink server` subprocess (ingest, validation, live state,
  batched SQLite writes, PUBACK after the write), measured from its
  `fieldlink_positions_stored_total` metric and, at the end, by counting rows in the database.

Scenarios: `closed` offers N units x R Hz for T seconds; `open` publishes as fast as the
generator can (in-flight capped) for T seconds and measures the sustained stored rate.

    python -m bench.ingest                      # both scenarios, threading and gevent
    python -m bench.ingest --quick              # a <= 30 s smoke run
    python -m bench.ingest --profile            # py-spy the server during the open scenario
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.cli import (
    POSITIVE,
    Run,
    add_load_generator,
    add_modes,
    add_profile,
    add_run_options,
    add_units,
    listed,
    parser,
)
from bench.load import (
    LoadReport,
    LoadRun,
    LoadSpec,
    Profiler,
    RawSubscriber,
    Sampler,
    broker_cpu_seconds,
    count_positions,
    cpu_seconds,
    provision_units,
    unit_ids,
    wait_for_count,
)
from bench.report import machine_facts, met, print_profiles, table
from harness.server import ServerProcess
from harness.services import running
from server.sim.local_broker import MosquittoProcess

log = logging.getLogger(__name__)

TARGET_RATIO = 0.70
TARGET_RATE = 8_000.0
SCENARIOS = ("closed", "open")


@dataclass
class Phase:
    """One measured run of the load against one consumer (raw subscriber or server)."""

    scenario: str
    consumer: str  # "raw", "threading" or "gevent"
    load: LoadReport
    delivered: int = 0  # raw: messages received; server: rows counted in the database
    done_at: float = math.nan  # when the last message was received / stored (epoch s)
    window_count: float = math.nan  # received / stored while the publishers ran
    before_count: float = 0.0  # received / stored before the publishers started
    drained: bool = True
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core while publishing
    max_inbox: float = math.nan
    stored_metric: float = math.nan
    profile: str = ""

    @property
    def window_rate(self) -> float:
        return self.window_count / self.load.duration_s

    @property
    def overall_rate(self) -> float:
        """Everything delivered over the time from the first publish to the last delivery."""
        if not self.delivered or math.isnan(self.done_at):
            return math.nan
        return self.delivered / max(self.done_at - self.load.started_at, 1e-9)

    @property
    def drain_rate(self) -> float:
        """Backlog worked off per second after the publishers stopped: the consumer's rate
        when the load generator no longer competes for the CPU."""
        left = self.delivered - self.window_count - self.before_count
        if not self.drained or self.drain_s < 0.5 or left <= 0:
            return math.nan
        return left / self.drain_s

    @property
    def drain_s(self) -> float:
        return max(0.0, self.done_at - self.load.stopped_at) if self.drained else math.nan

    @property
    def lost(self) -> str:
        missing = self.load.acked - self.delivered
        if missing <= 0:
            return "none"
        return f"{missing:,} missing" + ("" if self.drained else " (not drained)")


# -- one phase -------------------------------------------------------------------------------
def _spec(args: argparse.Namespace, scenario: str, port: int, units: list[str]) -> LoadSpec:
    return LoadSpec(
        host="127.0.0.1",
        port=port,
        unit_ids=tuple(units),
        rate_hz=args.rate if scenario == "closed" else None,
        duration_s=args.duration if scenario == "closed" else args.open_duration,
        processes=args.processes,
        max_inflight=args.max_inflight,
    )


def run_raw(args: argparse.Namespace, scenario: str, workdir: Path, units: list[str]) -> Phase:
    shutil.rmtree(workdir / f"mq-raw-{scenario}", ignore_errors=True)
    with running(MosquittoProcess(workdir / f"mq-raw-{scenario}")) as broker:
        sub = RawSubscriber("127.0.0.1", broker.port).start()
        try:
            sampler = Sampler(lambda: (float(sub.received()), 0.0), every=0.1).start()
            cpu0 = {"subscriber": cpu_seconds(sub.pid or 0), "broker": broker_cpu_seconds(broker)}
            run = LoadRun(_spec(args, scenario, broker.port, units)).start()
            report = run.wait()
            cpu1 = {"subscriber": cpu_seconds(sub.pid or 0), "broker": broker_cpu_seconds(broker)}
            drained_at = wait_for_count(sub.received, report.acked, args.drain_max)
            sampler.stop()
            result = sub.stop()
        finally:
            sub.close()
    drained = not math.isnan(drained_at)
    phase = Phase(scenario, "raw", report, delivered=result["count"], drained=drained)
    phase.done_at = result["last"] or math.nan
    phase.window_count = sampler.at(report.stopped_at) - sampler.at(report.started_at)
    phase.before_count = sampler.at(report.started_at)
    phase.cpu = _cpu_percent(cpu0, cpu1, report.duration_s)
    phase.cpu["publishers"] = 100 * report.cpu_s / report.duration_s
    return phase


def run_server(
    args: argparse.Namespace, scenario: str, mode: str, workdir: Path, units: list[str]
) -> Phase:
    here = workdir / f"{mode}-{scenario}"
    shutil.rmtree(here, ignore_errors=True)  # a kept --workdir from an earlier run
    here.mkdir(parents=True)
    db_url = f"sqlite:///{here / 'fieldlink.db'}"
    provision_units(db_url, [(u, "patrol_car") for u in units])
    with running(MosquittoProcess(here / "mq")) as broker:
        server = ServerProcess(here, broker.url, mode, db_url=db_url)
        profiler: Profiler | None = None
        try:
            server.start()

            def read() -> tuple[float, float]:
                m = server.metrics()
                return m.get("fieldlink_positions_stored_total", 0.0), m.get(
                    "fieldlink_inbox_depth", 0.0
                )

            sampler = Sampler(read).start()
            spec = _spec(args, scenario, broker.port, units)
            if args.profile and scenario == args.profile_scenario:
                profiler = Profiler(server.pid, here / "py-spy.txt", spec.duration_s + 1).start()
            cpu0 = {"server": cpu_seconds(server.pid), "broker": broker_cpu_seconds(broker)}
            report = LoadRun(spec).start().wait()
            cpu1 = {"server": cpu_seconds(server.pid), "broker": broker_cpu_seconds(broker)}
            drained_at = wait_for_count(lambda: read()[0], report.acked, args.drain_max)
            sampler.stop()
            phase = Phase(scenario, mode, report, drained=not math.isnan(drained_at))
            phase.stored_metric = read()[0]
            phase.done_at = min(sampler.reached(report.acked), drained_at)
            if math.isinf(phase.done_at):
                phase.done_at = math.nan
            phase.window_count = sampler.at(report.stopped_at) - sampler.at(report.started_at)
            phase.before_count = sampler.at(report.started_at)
            phase.max_inbox = max((x for _, _, x in sampler.samples), default=math.nan)
            phase.cpu = _cpu_percent(cpu0, cpu1, report.duration_s)
            phase.cpu["publishers"] = 100 * report.cpu_s / report.duration_s
            if profiler is not None:
                phase.profile = profiler.summary()
        finally:
            if profiler is not None:
                profiler.stop()
            server.stop()
    phase.delivered = count_positions(db_url)
    return phase


def _cpu_percent(before: dict[str, float], after: dict[str, float], span: float) -> dict:
    return {k: 100 * (after[k] - before[k]) / max(span, 1e-9) for k in before}


# -- the whole run -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = parser(
        "bench.ingest",
        "Fixes per second validated and stored by `fieldlink server`, beside the raw "
        "broker-to-subscriber rate of the same load on the same machine.",
        quick="a <= 30 s smoke run",
    )
    add_units(options, 4000, "simulated units", rate=2.0)
    options.add_argument(
        "--duration", type=POSITIVE, default=15.0, help="seconds of closed-loop load [15]"
    )
    options.add_argument(
        "--open-duration", type=POSITIVE, default=10.0, help="seconds of open-loop load [10]"
    )
    options.add_argument(
        "--scenarios",
        type=listed(SCENARIOS, "scenario"),
        default=",".join(SCENARIOS),
        help="closed (N x R Hz), open (max) [both]",
    )
    add_profile(options, "during one scenario")
    options.add_argument(
        "--profile-scenario", choices=SCENARIOS, default="open", help="which scenario to profile"
    )
    add_modes(options)
    add_load_generator(options, drain=True)
    add_run_options(options)
    args = options.parse_args(argv)
    if args.quick:
        args.units, args.rate, args.duration, args.drain_max = 500, 2.0, 3.0, 8.0
        args.scenarios = ["closed"]
    return args


def render(phases: list[Phase]) -> str:
    raw = {p.scenario: p for p in phases if p.consumer == "raw"}
    rows = []
    for p in phases:
        base = raw.get(p.scenario)
        ratio = p.overall_rate / base.overall_rate if base and p.consumer != "raw" else math.nan
        offered = f"{p.load.offered_per_s:,.0f}" if p.load.offered_per_s else "max"
        cpu = " ".join(f"{k[:3]} {v:.0f}%" for k, v in p.cpu.items())
        rows.append(
            [
                p.scenario,
                p.consumer,
                offered,
                p.load.sent_per_s,
                base.overall_rate if base else math.nan,
                p.window_rate,
                p.overall_rate,
                f"{ratio:.0%}" if not math.isnan(ratio) else "-",
                p.drain_s,
                p.drain_rate,
                p.lost,
                cpu,
            ]
        )
    return table(
        [
            "load",
            "consumer",
            "offered/s",
            "sent/s",
            "raw/s",
            "got/s in window",
            "got/s to last",
            "stored/raw",
            "drain s",
            "drain/s",
            "lost",
            "CPU % of a core: consumer/broker/publishers",
        ],
        rows,
    )


def verdicts(phases: list[Phase]) -> list[str]:
    raw = {p.scenario: p for p in phases if p.consumer == "raw"}
    lines = []
    for p in phases:
        if p.consumer == "raw" or p.scenario not in raw:
            continue
        ratio = p.overall_rate / raw[p.scenario].overall_rate
        lines.append(
            f"{p.scenario:6} {p.consumer:9}: stored/raw {ratio:.0%} "
            f"(target >= {TARGET_RATIO:.0%}: {met(ratio >= TARGET_RATIO)}), "
            f"{p.overall_rate:,.0f} fixes/s (target >= {TARGET_RATE:,.0f}: "
            f"{met(p.overall_rate >= TARGET_RATE)}), lost: {p.lost}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    units = unit_ids("u", args.units)
    phases: list[Phase] = []
    with Run(args, "ingest") as run:
        print(f"machine: {machine_facts()}")
        print(
            f"load: {args.units} units, closed {args.rate:g} Hz x {args.duration:g} s, "
            f"open {args.open_duration:g} s; {args.processes} publisher processes, "
            f"{args.max_inflight} QoS 1 in flight each",
            flush=True,
        )
        for scenario in args.scenarios:
            phases.append(run_raw(args, scenario, run.workdir, units))
            run.progress(_progress(phases[-1]))
            for mode in args.modes:
                phases.append(run_server(args, scenario, mode, run.workdir, units))
                run.progress(_progress(phases[-1]))
    print()
    print(render(phases))
    print()
    print("targets: stored >= 70 % of raw, >= 8,000 fixes/s")
    for line in verdicts(phases):
        print("  " + line)
    print_profiles((f"{p.consumer}, {p.scenario} load", p.profile) for p in phases)
    print(run.took())
    return 0


def _progress(p: Phase) -> str:
    return (
        f"{p.scenario:6} {p.consumer:9} "
        f"sent {p.load.acked:,} at {p.load.sent_per_s:,.0f}/s, "
        f"got {p.delivered:,} at {p.overall_rate:,.0f}/s (window {p.window_rate:,.0f}/s), "
        f"drain {p.drain_s:.1f} s, inbox max {p.max_inbox:,.0f}, lost: {p.lost}"
    )


if __name__ == "__main__":
    sys.exit(main())
