"""Alarm latency: a guard post's panic on MQTT -> `order` event at a patrol car's terminal.

Background: N units (default 5,000, kind `foot`, so dispatch passes them over) report at
R Hz (default 1) through mosquitto, from the shared load generator. In front of that, a
handful of patrol cars with known positions each hold a python-socketio client on
`/terminal`; every order is answered by callback (delivered) and then acked `cleared`, so the
car is free for the next panic. K panics (default 200, ~5/s) are published on
`units/{post}/alarm`, each from one of several guard posts; the time from `publish()` to the
`order` event at the terminal is measured on this machine's monotonic clock (publisher and
terminals live in this process).

Baselines in the same run, interleaved with the panics under the same load:
* `mqtt hop`: QoS 1 publish -> on_message between two paho clients of this process, through
  the same broker;
* `sio emit->ack`: a terminal's emit answered by the server's handler (an `ack` event without
  a body, which the handler refuses at validation: no worker, no store);
* `sio sync`: a terminal's `sync` call, which goes through the server's pipeline worker and
  the store: the same worker hop an alarm takes.

    python -m bench.alarm_latency            # 5,000 units, 200 panics, threading and gevent
    python -m bench.alarm_latency --quick    # a <= 30 s smoke run
"""

from __future__ import annotations

import argparse
import logging
import math
import queue
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.cli import (
    Run,
    add_alarms,
    add_load_generator,
    add_modes,
    add_profile,
    add_run_options,
    add_units,
    parser,
)
from bench.load import (
    LoadReport,
    LoadRun,
    LoadSpec,
    PatrolCar,
    Profiler,
    alarm_fleet,
    all_at_once,
    collect_orders,
    cpu_seconds,
    mqtt_client,
    publish_panic,
    sleep_until,
)
from bench.report import latency_table, machine_facts, met, print_profiles, summary_ms
from harness.server import ServerProcess
from harness.services import running
from server.sim.local_broker import MosquittoProcess
from wire import Topics

log = logging.getLogger(__name__)

TARGET_P50_MS = 5.0
TARGET_P99_MS = 20.0
PING_TOPIC = "bench/ping"
WARMUP_S = 3.0
SETTLE_S = 5.0  # longest wait for the last order after the last panic


@dataclass
class ModeResult:
    mode: str
    panics: int = 0
    orders: list[float] = field(default_factory=list)  # publish -> order, seconds
    # the same path split at the order's creation (its `ts`, the server's wall clock)
    to_order_made: list[float] = field(default_factory=list)
    order_to_terminal: list[float] = field(default_factory=list)
    mqtt_hop: list[float] = field(default_factory=list)
    sio_emit: list[float] = field(default_factory=list)
    sio_sync: list[float] = field(default_factory=list)
    server_alarm_to_order: float = math.nan  # the server's own histogram: mean, seconds
    load: LoadReport | None = None
    stored: float = math.nan
    cpu: dict[str, float] = field(default_factory=dict)
    transport: str = "?"
    profile: str = ""

    @property
    def missing(self) -> int:
        return self.panics - len(self.orders)


# -- MQTT clients of this process ----------------------------------------------------------------
class MqttPair:
    """A publisher (alarms, pings) and a subscriber (pings), both QoS 1, in this process."""

    def __init__(self, port: int):
        self.port = port
        self.pings: dict[int, float] = {}
        self.hops: list[float] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.pub = mqtt_client("bench-alarm-pub")
        self.sub = mqtt_client("bench-ping-sub")
        self.sub.on_connect = lambda c, *_: c.subscribe(PING_TOPIC, qos=1)
        self.sub.on_subscribe = lambda *_: self._subscribed.set()
        self.sub.on_message = self._on_ping

    def start(self) -> MqttPair:
        for client in (self.pub, self.sub):
            client.connect("127.0.0.1", self.port, keepalive=30)
            client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("ping subscriber did not subscribe")
        return self

    def ping(self, seq: int) -> None:
        with self._lock:
            self.pings[seq] = time.perf_counter()
        self.pub.publish(PING_TOPIC, str(seq).encode(), qos=1)

    def _on_ping(self, _c, _u, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        with self._lock:
            sent = self.pings.pop(int(message.payload), None)
        if sent is not None:
            self.hops.append(now - sent)

    def stop(self) -> None:
        for client in (self.pub, self.sub):
            client.disconnect()
            client.loop_stop()


# -- one async mode ------------------------------------------------------------------------------
def run_mode(args: argparse.Namespace, mode: str, workdir: Path) -> ModeResult:
    here = workdir / mode
    shutil.rmtree(here, ignore_errors=True)
    here.mkdir(parents=True)
    db_url = f"sqlite:///{here / 'fieldlink.db'}"
    fleet = alarm_fleet(args.units, args.cars, args.posts)
    log.info("provisioning")
    made = fleet.provision(db_url)
    posts = list(fleet.posts)
    result = ModeResult(mode)
    topics = Topics()
    arrivals: queue.SimpleQueue = queue.SimpleQueue()
    cars: list[PatrolCar] = []
    load: LoadRun | None = None
    pair: MqttPair | None = None
    profiler: Profiler | None = None
    with running(MosquittoProcess(here / "mq")) as broker:
        server = ServerProcess(here, broker.url, mode, db_url=db_url)
        try:
            server.start()
            log.info("server up")
            for car in fleet.cars:
                cars.append(PatrolCar(made[car], server.url, arrivals))
            result.transport = cars[0].terminal.sio.transport()
            pair = MqttPair(broker.port).start()
            period = 1.0 / args.panic_rate
            spec = LoadSpec(
                host="127.0.0.1",
                port=broker.port,
                unit_ids=fleet.background,
                rate_hz=args.rate,
                duration_s=WARMUP_S + args.panics * period + SETTLE_S + 2,
                processes=args.processes,
                max_inflight=args.max_inflight,
            )
            load = LoadRun(spec).start()
            log.info("load up")
            time.sleep(WARMUP_S)
            if args.profile:
                profiler = Profiler(server.pid, here / "py-spy.txt", args.panics * period).start()
            cpu0 = cpu_seconds(server.pid)
            result.panics = args.panics
            sent: dict[str, tuple[float, float]] = {}
            t0 = time.perf_counter()
            for i in range(args.panics):
                sleep_until(t0 + i * period)
                post = posts[i % len(posts)]
                publish_panic(pair.pub, topics, fleet, post, sent)
                _collect(arrivals, sent, result)
                sleep_until(t0 + (i + 1 / 3) * period)
                pair.ping(i)
                sleep_until(t0 + (i + 2 / 3) * period)
                terminal = cars[i % len(cars)].terminal
                if i % 2 == 0:
                    result.sio_emit.append(terminal.round_trip("ack", {}))
                else:
                    result.sio_sync.append(terminal.round_trip("sync", {}))
                _collect(arrivals, sent, result)
            settle = time.perf_counter() + SETTLE_S
            while sent and time.perf_counter() < settle:
                _collect(arrivals, sent, result, wait=0.1)
            result.cpu["server"] = (
                100 * (cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0)
            )
            result.mqtt_hop = list(pair.hops)
            metrics = server.metrics()
            count = metrics.get("fieldlink_alarm_to_order_seconds_count", 0.0)
            if count:
                total = metrics.get("fieldlink_alarm_to_order_seconds_sum", math.nan)
                result.server_alarm_to_order = total / count
            result.stored = metrics.get("fieldlink_positions_stored_total", math.nan)
            if profiler is not None:
                result.profile = profiler.summary()
        finally:
            if profiler is not None:
                profiler.stop()
            log.info("stopping")
            if load is not None:
                load.stop()
                result.load = load.wait()
            log.info("load stopped")
            all_at_once([car.close for car in cars], timeout=15)
            if pair is not None:
                pair.stop()
            log.info("clients closed")
            server.stop()
            log.info("server stopped")
    return result


def _collect(
    arrivals: queue.SimpleQueue,
    sent: dict[str, tuple[float, float]],
    result: ModeResult,
    wait: float = 0,
) -> None:
    for total, to_made, to_terminal in collect_orders(arrivals, sent, wait):
        result.orders.append(total)
        result.to_order_made.append(to_made)
        result.order_to_terminal.append(to_terminal)


# -- the whole run -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = parser(
        "bench.alarm_latency",
        "Panic (MQTT publish) to order (Socket.IO event at the terminal) latency under a "
        "background position load, beside MQTT and Socket.IO baselines.",
        quick="a <= 30 s smoke run",
    )
    add_units(options, 5000, "background units", rate=1.0)
    add_alarms(options, cars=8, panics=200, panic_rate=5.0)
    add_profile(options, "during the panics")
    add_modes(options)
    add_load_generator(options)
    add_run_options(options)
    args = options.parse_args(argv)
    if args.quick:
        args.units, args.panics, args.panic_rate = 500, 20, 10.0
    return args


def render(results: list[ModeResult]) -> str:
    return latency_table(
        ["mode", "path"],
        (
            ([r.mode, name], values)
            for r in results
            for name, values in (
                ("alarm -> order", r.orders),
                ("  publish -> order made", r.to_order_made),
                ("  order made -> terminal", r.order_to_terminal),
                ("mqtt hop", r.mqtt_hop),
                ("sio emit->ack", r.sio_emit),
                ("sio sync (worker)", r.sio_sync),
            )
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[ModeResult] = []
    with Run(args, "alarm") as run:
        print(f"machine: {machine_facts()}")
        print(
            f"background: {args.units} units x {args.rate:g} Hz; {args.cars} patrol cars with "
            f"terminals; {args.panics} panics at {args.panic_rate:g}/s from {args.posts} posts",
            flush=True,
        )
        for mode in args.modes:
            r = run_mode(args, mode, run.workdir)
            results.append(r)
            run.progress(
                f"{mode}: {len(r.orders)}/{r.panics} orders, transport {r.transport}, "
                f"background sent {r.load.sent_per_s if r.load else math.nan:,.0f}/s, server "
                f"CPU {r.cpu.get('server', math.nan):.0f}% of a core, server-side "
                f"alarm->order mean {1000 * r.server_alarm_to_order:.1f} ms"
            )
    print()
    print(render(results))
    print()
    print(f"targets: alarm -> order p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms")
    for r in results:
        s = summary_ms(r.orders)
        print(
            f"  {r.mode:9}: p50 {s['p50']:.1f} ms ({met(s['p50'] <= TARGET_P50_MS)}), "
            f"p99 {s['p99']:.1f} ms ({met(s['p99'] <= TARGET_P99_MS)}), "
            f"panics without an order: {r.missing}"
        )
    print_profiles((f"{r.mode}, during the panics", r.profile) for r in results)
    print(run.took())
    return 0


if __name__ == "__main__":
    sys.exit(main())
