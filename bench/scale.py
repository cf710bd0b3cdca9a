"""Several instances: ingest and alarm latency with 1, 2 and 3 `fieldlink server` instances.

For each number of instances N, everything is fresh: a mosquitto, a Redis, a PostgreSQL
database with the fleet provisioned once, and N instances sharing them (each with its own
MQTT client id and port, all members of the same MQTT v5 shared subscription). Two phases:

* ingest: the load generator publishes as fast as it can for T seconds (as `bench.ingest`'s
  `open` scenario); stored fixes/s = the instances' `fieldlink_positions_stored_total`
  summed, from the first publish to the last fix stored; the rows are counted afterwards.
  Each instance's CPU seconds over the same span, divided by the fixes it stored, is its
  CPU cost per fix: the figure that carries to a machine with more cores (`x of one, a core
  each` = N x that cost alone / that cost with N instances).
* alarms: under a background load at a fixed rate, guard posts panic on MQTT; the time from
  `publish()` to the `order` event at a patrol car's terminal (terminals spread over the
  instances, so most orders cross Redis from the instance that made them).

Baseline in the same run: a plain subscriber (`RawSubscriber`) under the same open load on
its own broker: what this machine moves from the publishers through mosquitto at all.

    python -m bench.scale                   # 1, 2 and 3 instances, < 3 min
    python -m bench.scale --quick           # ~35 s smoke run, 1 and 2 instances
    python -m bench.scale --instances 1,2   # any list of instance counts
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import queue
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.cli import (
    POSITIVE,
    Run,
    add_alarms,
    add_load_generator,
    add_mode,
    add_run_options,
    add_units,
    parser,
)
from bench.load import (
    AlarmFleet,
    LoadReport,
    LoadRun,
    LoadSpec,
    PatrolCar,
    Provisioned,
    RawSubscriber,
    Sampler,
    alarm_fleet,
    all_at_once,
    broker_cpu_seconds,
    collect_orders,
    count_positions,
    cpu_seconds,
    mqtt_client,
    postgres_backends,
    publish_panic,
    sleep_until,
    wait_for_count,
)
from bench.report import machine_facts, met, percentile, table
from harness.server import ServerProcess
from harness.services import RedisServer, running
from harness.stores import postgres_database, postgres_server_url
from server.sim.local_broker import MosquittoProcess
from wire import Topics

log = logging.getLogger(__name__)

TARGET_SPEEDUP = 1.8  # two instances over one, on ingest, where cores allow
SETTLE_S = 5.0  # longest wait for the last order after the last panic
# The cars stand still and report no fixes during the run: their provisioned places must
# neither go stale nor let them drop offline before the last panic.
CARS_STAY_FRESH = {"position_stale_s": 3600, "offline_after_s": 3600}


@dataclass
class Ingest:
    """One open-loop ingest phase against one consumer (the raw subscriber or N instances)."""

    load: LoadReport
    delivered: float = 0.0  # received / stored from the first publish to the last
    done_at: float = math.nan  # when the last one was received / stored (epoch s)
    rows: int = 0  # fixes of the phase counted in the store afterwards (instances only)
    cpu_s: list[float] = field(default_factory=list)  # per instance, first publish -> last
    stored: list[float] = field(default_factory=list)  # per instance, over the same span
    stack_cpu_s: float = math.nan  # broker + Redis + PostgreSQL backends, same span

    @property
    def rate(self) -> float:
        """Delivered per second, from the first publish to the last delivery."""
        if math.isnan(self.done_at):
            return math.nan
        return self.delivered / max(self.done_at - self.load.started_at, 1e-9)

    @property
    def lost(self) -> int:
        return max(0, self.load.acked - self.rows)

    def cpu_ms_per_fix(self) -> list[float]:
        return [
            1000 * c / s if s else math.nan for c, s in zip(self.cpu_s, self.stored, strict=True)
        ]

    def total_cpu_ms_per_fix(self) -> float:
        return 1000 * sum(self.cpu_s) / max(sum(self.stored), 1)

    def stack_cpu_ms_per_fix(self) -> float:
        return 1000 * (sum(self.cpu_s) + self.stack_cpu_s) / max(sum(self.stored), 1)


@dataclass
class Configuration:
    """What N instances did: their ingest phase and their alarms."""

    instances: int
    ingest: Ingest | None = None
    panics: int = 0
    # per panic, seconds: (publish -> order at a terminal, publish -> order made, order
    # made -> terminal), the order's making on the server's wall clock (same machine)
    alarms: list[tuple[float, float, float]] = field(default_factory=list)
    background: LoadReport | None = None

    def alarm_ms(self, q: float, part: int = 0) -> float:
        return 1000 * percentile(sorted(a[part] for a in self.alarms), q)


def _open_spec(args: argparse.Namespace, port: int, units: tuple[str, ...]) -> LoadSpec:
    return LoadSpec(
        host="127.0.0.1",
        port=port,
        unit_ids=units,
        rate_hz=None,
        duration_s=args.duration,
        processes=args.processes,
        max_inflight=args.max_inflight,
    )


# -- the baseline ------------------------------------------------------------------------------
def run_raw(args: argparse.Namespace, workdir: Path, fleet: AlarmFleet) -> Ingest:
    with running(MosquittoProcess(workdir / "mq-raw")) as broker:
        sub = RawSubscriber("127.0.0.1", broker.port).start()
        try:
            report = LoadRun(_open_spec(args, broker.port, fleet.background)).start().wait()
            wait_for_count(sub.received, report.acked, args.drain_max)
            result = sub.stop()
        finally:
            sub.close()
    phase = Ingest(report, delivered=result["count"])
    phase.done_at = result["last"] or math.nan
    return phase


# -- N instances -------------------------------------------------------------------------------
def run_instances(
    args: argparse.Namespace, count: int, workdir: Path, fleet: AlarmFleet, pg_server: str
) -> Configuration:
    here = workdir / f"instances-{count}"
    shutil.rmtree(here, ignore_errors=True)
    config = Configuration(count)
    with (
        postgres_database(pg_server) as db_url,
        running(MosquittoProcess(here / "mq")) as broker,
        running(RedisServer(here / "redis")) as redis,
    ):
        made = fleet.provision(db_url)
        shared = {"redis_url": redis.url, "secret_key": secrets.token_hex(16), **CARS_STAY_FRESH}
        servers = [
            ServerProcess(
                here / f"instance-{i}", broker.url, args.async_mode, db_url=db_url, **shared
            )
            for i in range(count)
        ]
        try:
            for server in servers:  # one after another, as deploy/README.md asks
                server.start()
            config.ingest = _ingest(args, servers, broker, redis, db_url, fleet)
            _alarms(args, servers, broker.port, fleet, made, config)
        finally:
            all_at_once([server.stop for server in servers], timeout=30)
    return config


def _ingest(
    args: argparse.Namespace,
    servers: list[ServerProcess],
    broker: MosquittoProcess,
    redis: RedisServer,
    db_url: str,
    fleet: AlarmFleet,
) -> Ingest:
    def stored() -> list[float]:
        return [s.metric("fieldlink_positions_stored_total") for s in servers]

    def stack_cpu() -> dict[str, float]:
        """CPU seconds of what the instances share, per process (PostgreSQL: per backend)."""
        used = {"broker": broker_cpu_seconds(broker), "redis": cpu_seconds(redis.proc.pid)}
        used.update({f"pg{pid}": cpu_seconds(pid) for pid in postgres_backends(db_url)})
        return used

    sampler = Sampler(lambda: (sum(stored()), 0.0)).start()
    stored0 = stored()
    cpu0 = [cpu_seconds(s.pid) for s in servers]
    stack0 = stack_cpu()
    report = LoadRun(_open_spec(args, broker.port, fleet.background)).start().wait()
    # the sampler's figure, not a /metrics request of its own every 50 ms: the instances'
    # CPU per fix should be theirs
    drained_at = wait_for_count(sampler.latest, sum(stored0) + report.acked, args.drain_max)
    cpu1 = [cpu_seconds(s.pid) for s in servers]
    stack1 = stack_cpu()
    stored1 = stored()
    sampler.stop()
    phase = Ingest(report, delivered=sum(stored1) - sum(stored0))
    phase.done_at = min(sampler.reached(sum(stored0) + report.acked), drained_at)
    if math.isinf(phase.done_at):  # not drained: the rate is up to the last sample
        phase.done_at = sampler.samples[-1][0] if sampler.samples else math.nan
    phase.cpu_s = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    phase.stored = [b - a for a, b in zip(stored0, stored1, strict=True)]
    # a backend that came up during the phase counts from zero
    phase.stack_cpu_s = sum(v - stack0.get(k, 0.0) for k, v in stack1.items())
    phase.rows = count_positions(db_url, ts_from=report.started_at - 1)
    return phase


def _alarms(
    args: argparse.Namespace,
    servers: list[ServerProcess],
    port: int,
    fleet: AlarmFleet,
    made: dict[str, Provisioned],
    config: Configuration,
) -> None:
    """Panics under a background load; the cars' terminals spread over the instances."""
    topics = Topics()
    arrivals: queue.SimpleQueue = queue.SimpleQueue()
    cars: list[PatrolCar] = []
    period = 1.0 / args.panic_rate
    spec = LoadSpec(
        host="127.0.0.1",
        port=port,
        unit_ids=fleet.background,
        rate_hz=args.background_rate,
        duration_s=args.warmup + args.panics * period + SETTLE_S + 2,
        processes=args.processes,
        max_inflight=args.max_inflight,
    )
    panic = mqtt_client("bench-panic")
    load: LoadRun | None = None
    try:
        for i, car in enumerate(fleet.cars):
            cars.append(PatrolCar(made[car], servers[i % len(servers)].url, arrivals))
        panic.connect("127.0.0.1", port, keepalive=30)
        panic.loop_start()
        load = LoadRun(spec).start()
        time.sleep(args.warmup)
        posts = list(fleet.posts)
        sent: dict[str, tuple[float, float]] = {}
        t0 = time.perf_counter()
        for i in range(args.panics):
            sleep_until(t0 + i * period)
            post = posts[i % len(posts)]
            publish_panic(panic, topics, fleet, post, sent)
            config.alarms += collect_orders(arrivals, sent)
        config.panics = args.panics
        settle = time.perf_counter() + SETTLE_S
        while sent and time.perf_counter() < settle:
            config.alarms += collect_orders(arrivals, sent, 0.1)
    finally:
        if load is not None:
            load.stop()
            config.background = load.wait()
        all_at_once([car.close for car in cars], timeout=15)
        panic.disconnect()
        panic.loop_stop()


# -- the whole run -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = parser(
        "bench.scale",
        "Ingest (stored fixes/s, CPU per fix) and alarm latency with several "
        "`fieldlink server` instances sharing PostgreSQL, Redis and an MQTT shared "
        "subscription, beside the raw broker-to-subscriber rate of the same load.",
        quick="a ~35 s smoke run, 1 and 2 instances",
    )
    options.add_argument("--instances", help="instance counts to run [1,2,3; with --quick 1,2]")
    add_mode(options, "--async-mode", "the instances' Socket.IO")
    add_units(options, 4000, "units publishing fixes")
    options.add_argument(
        "--duration", type=POSITIVE, default=6.0, help="seconds of open-loop ingest load [6]"
    )
    options.add_argument(
        "--background-rate",
        type=POSITIVE,
        default=0.25,
        help="fixes/s per unit during the panics [0.25]",
    )
    # a panic's plan sends two cars: enough of them that a panic never waits for one to be
    # cleared, which would be counted as its latency
    add_alarms(options, cars=40, panics=100, panic_rate=10.0)
    options.add_argument(
        "--warmup",
        type=POSITIVE,
        default=3.0,
        help="seconds of background load before the first panic [3]",
    )
    options.add_argument(
        "--postgres-url",
        help="PostgreSQL server to make databases on, postgresql://user:pw@host:port "
        "[FIELDLINK_POSTGRES_URL, else scripts/postgres.sh]",
    )
    add_load_generator(options, drain=True)
    add_run_options(options)
    args = options.parse_args(argv)
    if args.quick:
        args.units, args.duration, args.drain_max = 300, 2.0, 15.0
        args.cars, args.posts, args.panics, args.warmup = 20, 10, 10, 1.0
    if args.instances is None:
        args.instances = "1,2" if args.quick else "1,2,3"
    try:
        args.instance_list = [int(n) for n in args.instances.split(",") if n]
    except ValueError:
        options.error(f"--instances takes numbers, e.g. 1,2,3, not {args.instances!r}")
    if not args.instance_list or min(args.instance_list) < 1:
        options.error("--instances needs at least one count, each >= 1")
    return args


def _one(configs: list[Configuration]) -> Ingest | None:
    return next((c.ingest for c in configs if c.instances == 1 and c.ingest), None)


def core_each_speedup(ingest: Ingest, one: Ingest, instances: int) -> float:
    """N instances over one, each with a core of its own, from the instances' CPU per fix:
    N / (ms per fix at N) over 1 / (ms per fix alone)."""
    return instances * one.total_cpu_ms_per_fix() / ingest.total_cpu_ms_per_fix()


def render(raw: Ingest, configs: list[Configuration]) -> str:
    base = _one(configs)
    one = base.rate if base else math.nan
    rows = []
    for c in configs:
        ingest = c.ingest
        if ingest is None:
            continue
        rows.append(
            [
                c.instances,
                ingest.load.sent_per_s,
                ingest.rate,
                f"{ingest.rate / one:.2f}x" if base else "-",
                raw.rate,
                f"{ingest.lost:,}",
                " / ".join(f"{ms:.3f}" for ms in ingest.cpu_ms_per_fix()),
                f"{ingest.total_cpu_ms_per_fix():.3f}",
                f"{ingest.stack_cpu_ms_per_fix():.3f}",
                f"{core_each_speedup(ingest, base, c.instances):.2f}x" if base else "-",
                f"{len(c.alarms)}/{c.panics}",
                f"{c.alarm_ms(50):.1f} / {c.alarm_ms(95):.1f} / {c.alarm_ms(99):.1f}",
            ]
        )
    return table(
        [
            "instances",
            "sent/s",
            "stored/s",
            "x of one",
            "raw/s",
            "lost",
            "CPU ms/fix, each instance",
            "all instances",
            "with broker+Redis+PG",
            "x of one, a core each",
            "orders",
            "alarm p50 / p95 / p99 ms",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pg_server = (args.postgres_url or postgres_server_url()).rstrip("/")
    fleet = alarm_fleet(args.units, args.cars, args.posts)
    raw: Ingest | None = None
    configs: list[Configuration] = []
    with Run(args, "scale") as run:
        print(f"machine: {machine_facts()}")
        print(
            f"ingest: {args.units} units open loop for {args.duration:g} s, "
            f"{args.processes} publisher processes, {args.max_inflight} QoS 1 in flight each; "
            f"alarms: {args.panics} panics at {args.panic_rate:g}/s from {args.posts} posts to "
            f"{args.cars} patrol cars, under {args.units} units x {args.background_rate:g} Hz; "
            f"instances {args.instances} ({args.async_mode}) on PostgreSQL, Redis, mosquitto",
            flush=True,
        )
        raw = run_raw(args, run.workdir, fleet)
        run.progress(f"raw subscriber: {raw.delivered:,.0f} at {raw.rate:,.0f}/s")
        for count in args.instance_list:
            configs.append(run_instances(args, count, run.workdir, fleet, pg_server))
            run.progress(_progress(configs[-1]))
    if raw is None:
        return 1
    print()
    print(render(raw, configs))
    print()
    if verdict := speedup_verdict(configs):
        print(verdict)
    print(
        f"This machine has {os.cpu_count()} CPUs: the instances share them with mosquitto, "
        "PostgreSQL, Redis and the load generator, so the measured speed-up is bounded by "
        "cores, not by the instances. CPU ms per fix (an instance's CPU over the fixes it "
        "stored, from the first publish to the last fix stored) is the figure that carries to "
        "a bigger machine: an instance with a core of its own stores ~1000 / that figure "
        "fixes/s, as long as broker, Redis and PostgreSQL have cores of their own too."
    )
    print(run.took())
    return 0


def speedup_verdict(configs: list[Configuration]) -> str:
    """Two instances beside one, measured and with a core each ("" without both)."""
    one = _one(configs)
    two = next((c.ingest for c in configs if c.instances == 2 and c.ingest), None)
    if not (one and two):
        return ""
    measured = two.rate / one.rate
    projected = core_each_speedup(two, one, 2)
    return (
        f"target: two instances >= {TARGET_SPEEDUP:g}x one on ingest, where cores allow: "
        f"{measured:.2f}x measured here ({met(measured >= TARGET_SPEEDUP)}), "
        f"{projected:.2f}x with a core per instance from CPU per fix "
        f"({met(projected >= TARGET_SPEEDUP)})"
    )


def _progress(c: Configuration) -> str:
    ingest = c.ingest
    assert ingest is not None
    return (
        f"{c.instances} instance(s): stored {ingest.delivered:,.0f} at {ingest.rate:,.0f}/s "
        f"(by instance {' / '.join(f'{s:,.0f}' for s in ingest.stored)}), "
        f"{ingest.lost:,} lost; {len(c.alarms)}/{c.panics} orders, alarm p50 "
        f"{c.alarm_ms(50):.1f} ms (publish -> order made {c.alarm_ms(50, 1):.1f}, "
        f"made -> terminal {c.alarm_ms(50, 2):.1f}), background sent "
        f"{c.background.sent_per_s if c.background else math.nan:,.0f}/s"
    )


if __name__ == "__main__":
    sys.exit(main())
