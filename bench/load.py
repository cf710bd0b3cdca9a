"""The benchmarks' own machinery (what tests drive too is in `harness/`): a multi-process
MQTT load generator, a counting subscriber, unit provisioning in bulk, counting the store,
following a counter, py-spy, and the pieces of an alarm: fleet, patrol cars, panics.

The load generator simulates N units publishing fixes at R Hz each (or as fast as it can,
"open loop") on `{root}/units/{unit}/position` at QoS 1. It runs a few paho clients, one per
process, so the generator is not the bottleneck of what it measures. Each client caps its QoS 1
messages in flight (paho's `max_inflight_messages_set`, and a semaphore so paho's own queue
never grows), and what counts as "sent" is what the broker acknowledged (PUBACK).

Payloads are built with `wire.encode` (validated once per unit, with a sentinel time), then
only the time is substituted per message, so every payload is wire-valid and each fix time is
unique per unit (the store's unique (unit, ts) index would otherwise eat repeats).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import queue
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.report import summarize_py_spy
from harness.clients import Terminal
from harness.stores import connect_postgres
from server.sim.local_broker import MosquittoProcess, end_process
from wire import DEFAULT_ROOT, Channel, Topics, encode

log = logging.getLogger(__name__)

# A fix time that appears nowhere else in a payload: replaced by the real time per message.
_SENTINEL_TS = 1111111111.25
CITY = (52.5200, 13.4050)  # where the simulated fleet drives (any city works)
READY_TIMEOUT_S = 30.0


# -- load generator --------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadSpec:
    """What to offer: `rate_hz` fixes per second per unit, or as fast as possible when None."""

    host: str
    port: int
    unit_ids: tuple[str, ...]
    rate_hz: float | None
    duration_s: float
    processes: int = 2
    max_inflight: int = 200
    topic_root: str = DEFAULT_ROOT
    drain_s: float = 15.0  # how long a publisher waits for its last PUBACKs

    @property
    def offered_per_s(self) -> float | None:
        return None if self.rate_hz is None else self.rate_hz * len(self.unit_ids)


@dataclass
class LoadReport:
    """What the publishers actually did; times are epoch seconds (same clock as the server)."""

    offered_per_s: float | None
    published: int = 0
    acked: int = 0
    failed: int = 0
    started_at: float = 0.0
    stopped_at: float = 0.0  # when the last publisher stopped publishing
    cpu_s: float = 0.0  # CPU time the publishers used while publishing
    per_second: list[int] = field(default_factory=list)  # PUBACKs per second since started_at

    @property
    def duration_s(self) -> float:
        return max(self.stopped_at - self.started_at, 1e-9)

    @property
    def sent_per_s(self) -> float:
        """Acknowledged publishes per second over the publishing window."""
        return self.acked / self.duration_s


def payload_template(unit_index: int, rng: random.Random) -> tuple[bytes, bytes]:
    """(prefix, suffix) around the fix time of a wire-valid position payload for one unit."""
    lat = CITY[0] + rng.uniform(-0.15, 0.15)
    lon = CITY[1] + rng.uniform(-0.25, 0.25)
    fix = {
        "ts": _SENTINEL_TS,
        "lat": round(lat, 6),
        "lon": round(lon, 6),
        "speed": round(rng.uniform(0, 20), 1),
        "heading": round(rng.uniform(0, 359), 1),
        "acc": 4.5,
        "mode": 3,
    }
    body = encode(Channel.POSITION, fix)
    marker = repr(_SENTINEL_TS).encode()
    if body.count(marker) != 1:
        raise RuntimeError(f"payload template for unit {unit_index} has no single time slot")
    prefix, suffix = body.split(marker)
    return prefix, suffix


def _split(items: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    parts = max(1, min(parts, len(items)))
    return [tuple(items[i::parts]) for i in range(parts)]


def _publisher(
    index: int,
    spec: LoadSpec,
    unit_ids: tuple[str, ...],
    ready: Any,
    go: Any,
    stop: Any,
    results: Any,
) -> None:
    """One publishing process: one paho client for its share of the units."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    topics = Topics(spec.topic_root)
    rng = random.Random(index)
    names = [topics.unit(u, Channel.POSITION) for u in unit_ids]
    templates = [payload_template(i, rng) for i in range(len(unit_ids))]
    window = threading.Semaphore(spec.max_inflight)
    acks: Counter[int] = Counter()
    state = {"acked": 0, "origin": 0.0}
    connected = threading.Event()

    def on_connect(_c, _u, _f, reason_code, _p) -> None:
        if not reason_code.is_failure:
            connected.set()

    def on_publish(_c, _u, _mid, _rc, _p) -> None:
        state["acked"] += 1
        acks[int(time.time() - state["origin"])] += 1
        window.release()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-load-{os.getpid()}-{index}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(spec.max_inflight)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(spec.host, spec.port, keepalive=30)
    client.loop_start()
    published = failed = 0
    started = stopped = cpu_used = 0.0
    try:
        if not connected.wait(10):
            raise RuntimeError(f"publisher {index} could not connect to the broker")
        ready.put(index)
        if not go.wait(READY_TIMEOUT_S):
            return
        n = len(unit_ids)
        per_s = None if spec.rate_hz is None else spec.rate_hz * n
        step_ts = 1.0 / spec.rate_hz if spec.rate_hz else 0.001
        started = time.time()
        cpu_start = time.process_time()
        state["origin"] = started
        base_ts = round(started, 3)
        t0 = time.monotonic()
        end = t0 + spec.duration_s
        i = 0
        while not stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            if per_s is not None:
                due = (now - t0) * per_s
                if i >= due:  # ahead of schedule: wait for the next message's slot
                    time.sleep(min((i + 1) / per_s - (now - t0), end - now, 0.05))
                    continue
            if not window.acquire(timeout=0.1):
                continue  # the in-flight cap is reached: wait for PUBACKs
            unit, seq = i % n, i // n
            prefix, suffix = templates[unit]
            payload = prefix + repr(base_ts + seq * step_ts).encode() + suffix
            info = client.publish(names[unit], payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                failed += 1
                window.release()
            else:
                published += 1
            i += 1
        stopped = time.time()
        cpu_used = time.process_time() - cpu_start
        # the last PUBACKs: wait until the window is whole again (bounded)
        deadline = time.monotonic() + spec.drain_s
        while state["acked"] < published and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
        top = max(acks) + 1 if acks else 0
        results.put(
            {
                "index": index,
                "published": published,
                "acked": state["acked"],
                "failed": failed,
                "started_at": started,
                "stopped_at": stopped,
                "cpu_s": cpu_used,
                "per_second": [acks.get(s, 0) for s in range(top)],
            }
        )


class LoadRun:
    """The publishers of one load, started together; `start()`, then `wait()` or `stop()`."""

    def __init__(self, spec: LoadSpec):
        self.spec = spec
        self.ctx = mp.get_context("spawn")
        self.ready = self.ctx.Queue()
        self.results = self.ctx.Queue()
        self.go = self.ctx.Event()
        self.halt = self.ctx.Event()
        self.procs: list[Any] = []

    def start(self) -> LoadRun:
        shares = _split(self.spec.unit_ids, self.spec.processes)
        for i, share in enumerate(shares):
            proc = self.ctx.Process(
                target=_publisher,
                args=(i, self.spec, share, self.ready, self.go, self.halt, self.results),
                daemon=True,
            )
            proc.start()
            self.procs.append(proc)
        for _ in shares:
            try:
                self.ready.get(timeout=READY_TIMEOUT_S)
            except queue.Empty:
                self.terminate()
                raise RuntimeError("load publishers did not connect in time") from None
        self.go.set()
        log.info(
            "load: %d units in %d processes, %s",
            len(self.spec.unit_ids),
            len(shares),
            f"{self.spec.offered_per_s:.0f} fixes/s offered"
            if self.spec.offered_per_s
            else "open loop",
        )
        return self

    def stop(self) -> None:
        self.halt.set()

    def wait(self) -> LoadReport:
        """Collect every publisher's report (bounded by the run's duration and drain)."""
        limit = time.monotonic() + self.spec.duration_s + self.spec.drain_s + 30
        parts: list[dict] = []
        while len(parts) < len(self.procs) and time.monotonic() < limit:
            with contextlib.suppress(queue.Empty):
                parts.append(self.results.get(timeout=0.5))
        self.terminate()
        return _merge(self.spec.offered_per_s, parts)

    def terminate(self) -> None:
        for proc in self.procs:
            end_child(proc, timeout=5)


def end_child(proc: mp.process.BaseProcess, timeout: float) -> None:
    """Give a child process of the bench `timeout` to end by itself, then kill it."""
    proc.join(timeout=timeout)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)


def _merge(offered: float | None, parts: list[dict]) -> LoadReport:
    report = LoadReport(offered)
    if not parts:
        return report
    report.started_at = min(p["started_at"] for p in parts if p["started_at"]) if parts else 0
    report.stopped_at = max(p["stopped_at"] for p in parts)
    for p in parts:
        report.published += p["published"]
        report.acked += p["acked"]
        report.failed += p["failed"]
        report.cpu_s += p["cpu_s"]
        shift = round(p["started_at"] - report.started_at)
        for s, count in enumerate(p["per_second"]):
            while len(report.per_second) <= s + shift:
                report.per_second.append(0)
            report.per_second[s + shift] += count
    return report


def run_load(spec: LoadSpec) -> LoadReport:
    """Publish the whole load and return what was acknowledged."""
    run = LoadRun(spec).start()
    try:
        return run.wait()
    finally:
        run.terminate()


# -- a plain counting subscriber ---------------------------------------------------------------
def _counter(
    host: str, port: int, filters: list[str], ready: Any, stop: Any, progress: Any, out: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = {"n": 0, "first": 0.0, "last": 0.0}
    subscribed = threading.Event()

    def on_connect(client, _u, _f, reason_code, _p) -> None:
        if not reason_code.is_failure:
            client.subscribe([(f, 1) for f in filters])

    def on_subscribe(_c, _u, _mid, _codes, _p) -> None:
        subscribed.set()

    def on_message(_c, _u, _message) -> None:
        now = time.time()
        if not state["n"]:
            state["first"] = now
        state["n"] += 1
        state["last"] = now

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{os.getpid()}", protocol=mqtt.MQTTv5
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if subscribed.wait(10):
            ready.set()
        deadline = time.monotonic() + 900
        while not stop.wait(0.1) and time.monotonic() < deadline:
            progress.value = state["n"]
    finally:
        client.disconnect()
        client.loop_stop()
        progress.value = state["n"]
        out.put({"count": state["n"], "first": state["first"], "last": state["last"]})


class RawSubscriber:
    """A plain paho subscriber in its own process (QoS 1, the server's filters) that counts.

    It acknowledges each message as paho does by default, on receipt: the upper bound of what
    any subscriber on this machine can take from this broker under the same load.
    """

    def __init__(self, host: str, port: int, topic_root: str = DEFAULT_ROOT):
        self.ctx = mp.get_context("spawn")
        self.ready = self.ctx.Event()
        self.halt = self.ctx.Event()
        self.progress = self.ctx.Value("q", 0, lock=False)
        self.out = self.ctx.Queue()
        filters = Topics(topic_root).upstream_filters()
        self.proc = self.ctx.Process(
            target=_counter,
            args=(host, port, filters, self.ready, self.halt, self.progress, self.out),
            daemon=True,
        )
        self.result: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def start(self) -> RawSubscriber:
        self.proc.start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.close()
            raise RuntimeError("the raw subscriber did not subscribe in time")
        return self

    def received(self) -> int:
        """Messages received so far (updated every 0.1 s)."""
        return int(self.progress.value)

    def stop(self) -> dict[str, Any]:
        self.halt.set()
        try:
            self.result = self.out.get(timeout=15)
        except queue.Empty:
            self.result = {"count": self.received(), "first": 0.0, "last": 0.0}
        self.close()
        return self.result

    def close(self) -> None:
        self.halt.set()
        end_child(self.proc, timeout=5)


# -- provisioning ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Provisioned:
    unit_id: str
    kind: str
    token: str
    lat: float | None = None
    lon: float | None = None


def provision_units(
    db_url: str,
    units: Sequence[tuple[str, str]],
    fixes: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Provisioned]:
    """Create `units` ((id, kind) pairs) in bulk; units in `fixes` start online at that place.

    Uses the server's own models (`open_database` creates the tables), so the rows are what
    `create_unit` would have made, thousands at a time.
    """
    from server.store import Position, Unit, db, open_database, token_digest

    fixes = fixes or {}
    open_database(db_url)
    now = time.time()
    made: dict[str, Provisioned] = {}
    rows: list[dict[str, Any]] = []
    for unit_id, kind in units:
        token = secrets.token_urlsafe(24)
        lat, lon = fixes.get(unit_id, (None, None))
        made[unit_id] = Provisioned(unit_id, kind, token, lat, lon)
        rows.append(
            {
                "id": unit_id,
                "kind": kind,
                "name": unit_id,
                "grid": "",
                "terminal_token_hash": token_digest(token),
                "status": "available",
                "status_since": now,
                "online": unit_id in fixes,
                "online_since": now if unit_id in fixes else None,
                "created_at": now,
            }
        )
    positions = [
        {"unit": u, "ts": now, "lat": lat, "lon": lon, "received_at": now, "mode": 3}
        for u, (lat, lon) in fixes.items()
    ]
    with db.connection_context(), db.atomic():
        for start in range(0, len(rows), 500):
            Unit.insert_many(rows[start : start + 500]).execute()
        for start in range(0, len(positions), 500):
            Position.insert_many(positions[start : start + 500]).execute()
    db.close()
    return made


def sqlite_path(db_url: str) -> Path:
    if not db_url.startswith("sqlite:///"):
        raise ValueError(f"{db_url!r} is not a SQLite URL")
    return Path(db_url[len("sqlite:///") :])


def count_positions(db_url: str, ts_from: float = 0.0, ts_to: float = math.inf) -> int:
    """Stored fixes whose fix time is in [ts_from, ts_to), in a SQLite or PostgreSQL store."""
    bounds = (ts_from, ts_to if math.isfinite(ts_to) else 1e18)
    if db_url.startswith("postgresql://"):
        with connect_postgres(db_url) as conn:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM position WHERE ts >= %s AND ts < %s", bounds
            ).fetchone()
        return int(n)
    with contextlib.closing(sqlite3.connect(sqlite_path(db_url), timeout=30)) as conn:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM position WHERE ts >= ? AND ts < ?", bounds
        ).fetchone()
    return int(n)


def postgres_backends(db_url: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving the database at `db_url` (but this
    question's own): where the store's share of the CPU goes."""
    with connect_postgres(db_url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(pid) for (pid,) in rows]


# -- CPU -------------------------------------------------------------------------------------
def broker_cpu_seconds(broker: MosquittoProcess) -> float:
    return cpu_seconds(broker.proc.pid) if broker.proc else math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc), NaN elsewhere."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


# -- following a counter ---------------------------------------------------------------------
STALL_S = 10.0  # no progress for this long after the load stopped: stop waiting


class Sampler:
    """Polls a counter every `every` seconds in a thread: (time, value, extra) samples."""

    def __init__(self, read, every: float = 0.25):
        self.read = read
        self.every = every
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value, extra = self.read()
                self.samples.append((time.time(), value, extra))
            except Exception as exc:  # a slow /metrics answer: skip this sample
                log.debug("sample failed: %s", exc)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def at(self, when: float) -> float:
        """The counter's value at `when`, interpolated between samples."""
        before = [(t, v) for t, v, _ in self.samples if t <= when]
        after = [(t, v) for t, v, _ in self.samples if t >= when]
        if not before:
            return 0.0
        if not after:
            return before[-1][1]
        (t0, v0), (t1, v1) = before[-1], after[0]
        return v0 if t1 == t0 else v0 + (v1 - v0) * (when - t0) / (t1 - t0)

    def latest(self) -> float:
        """The counter's last sampled value (0 before the first sample)."""
        return self.samples[-1][1] if self.samples else 0.0

    def reached(self, target: float) -> float:
        """When the counter first reached `target`, +inf if it never did."""
        return next((t for t, v, _ in self.samples if v >= target), math.inf)


def wait_for_count(read, target: int, limit_s: float) -> float:
    """Wait until `read()` reaches `target` and return when (epoch s); NaN when it stalls
    for STALL_S or `limit_s` passes first."""
    deadline = time.monotonic() + limit_s
    last, last_change = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        value = read()
        if value >= target:
            return time.time()
        if value != last:
            last, last_change = value, time.monotonic()
        elif time.monotonic() - last_change > STALL_S:
            return math.nan
        time.sleep(0.05)
    return math.nan


# -- py-spy ------------------------------------------------------------------------------------
class Profiler:
    """py-spy attached to a running process (optional: skipped when py-spy is missing)."""

    def __init__(self, pid: int, out: Path, duration_s: float, rate: int = 100):
        self.pid = pid
        self.out = out
        self.duration_s = duration_s
        self.rate = rate
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str | None:
        candidate = Path(sys.executable).parent / "py-spy"
        return str(candidate) if candidate.exists() else None

    def start(self) -> Profiler:
        binary = self.binary()
        if binary is None:
            log.warning("py-spy is not installed in this environment: no profile")
            return self
        self.proc = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(self.pid),
                "--format",
                "raw",
                "--threads",
                "--gil",
                "--rate",
                str(self.rate),
                "--duration",
                str(max(1, int(self.duration_s))),
                "--output",
                str(self.out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def stop(self) -> Path | None:
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout=self.duration_s + 30)  # py-spy ends by itself after duration
        except subprocess.TimeoutExpired:
            end_process(self.proc, signal.SIGINT, name="py-spy")
        self.proc = None
        return self.out if self.out.exists() else None

    def summary(self) -> str:
        """Stop, and summarise what py-spy recorded ("" when it recorded nothing)."""
        out = self.stop()
        return summarize_py_spy(out) if out is not None else ""


# -- alarms: the fleet that answers them, patrol cars, panics -----------------------------------


@dataclass(frozen=True)
class AlarmFleet:
    """Background units (kind `foot`, so dispatch passes them over), patrol cars standing at
    known places (they answer the panics) and guard posts that panic, each post at its place."""

    background: tuple[str, ...]
    cars: dict[str, tuple[float, float]]
    posts: dict[str, tuple[float, float]]

    @property
    def units(self) -> list[tuple[str, str]]:
        return (
            [(u, "foot") for u in self.background]
            + [(c, "patrol_car") for c in self.cars]
            + [(p, "guard_post") for p in self.posts]
        )

    def provision(self, db_url: str) -> dict[str, Provisioned]:
        return provision_units(db_url, self.units, fixes=self.cars)


def alarm_fleet(background: int, cars: int, posts: int, seed: int = 7) -> AlarmFleet:
    """Cars on a ring around the city centre, posts scattered inside it."""
    rng = random.Random(seed)
    car_fix = {}
    for i, car in enumerate(unit_ids("car", cars)):
        angle = 2 * math.pi * i / cars
        car_fix[car] = (CITY[0] + 0.02 * math.sin(angle), CITY[1] + 0.03 * math.cos(angle))
    post_fix = {
        p: (CITY[0] + rng.uniform(-0.02, 0.02), CITY[1] + rng.uniform(-0.03, 0.03))
        for p in unit_ids("post", posts)
    }
    return AlarmFleet(tuple(unit_ids("bg", background)), car_fix, post_fix)


def panic_message(place: tuple[float, float]) -> bytes:
    """A wire-valid panic from a post at `place`, stamped now."""
    now = time.time()
    alarm = {
        "alarm_id": uuid.uuid4().hex,
        "ts": now,
        "kind": "panic",
        "fix": {"ts": now, "lat": place[0], "lon": place[1]},
    }
    return encode(Channel.ALARM, alarm)


def publish_panic(
    client: mqtt.Client,
    topics: Topics,
    fleet: AlarmFleet,
    post: str,
    sent: dict[str, tuple[float, float]],
) -> None:
    """A post's panic on MQTT; `sent[post]` = when (monotonic, wall), to match its order."""
    payload = panic_message(fleet.posts[post])
    sent[post] = (time.perf_counter(), time.time())
    client.publish(topics.unit(post, Channel.ALARM), payload, qos=1)


def mqtt_client(name: str, max_inflight: int = 100) -> mqtt.Client:
    """A paho v5 client of this process with a unique id."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(max_inflight)
    return client


class PatrolCar:
    """A patrol car's terminal: each new order goes to `arrivals` as (perf_counter, wall
    clock, order) of its arrival, and is acked `cleared` outside the event handler, so the
    car is free for the next panic. It connects before any order, so without a `sync`."""

    def __init__(self, car: Provisioned, url: str, arrivals: queue.SimpleQueue):
        self.arrivals = arrivals
        self.seen: set[str] = set()
        self.to_clear: queue.SimpleQueue = queue.SimpleQueue()
        self._running = True
        self.terminal = Terminal(
            url, car.token, on_order=self._on_order, sync=False, websocket_only=True
        )
        self._clearer = threading.Thread(target=self._clear_loop, daemon=True)
        self._clearer.start()

    def _on_order(self, order: dict[str, Any], at: float, wall: float) -> None:
        order_id = order["order_id"]
        if order_id not in self.seen:  # a resend (after `sync`) is not a new arrival
            self.seen.add(order_id)
            self.arrivals.put((at, wall, order))
            self.to_clear.put(order_id)

    def _clear_loop(self) -> None:
        while self._running:
            try:
                order_id = self.to_clear.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.terminal.ack(order_id, "cleared")
            except Exception as exc:
                log.warning("clearing %s failed: %s", order_id, exc)

    def close(self) -> None:
        self._running = False
        try:
            self.terminal.close()
        except Exception as exc:  # a socket the server closed first, at the end of the run
            log.debug("closing the terminal: %s", exc)
        self._clearer.join(timeout=2)


def all_at_once(calls: Sequence[Callable[[], object]], timeout: float) -> None:
    """Make the calls together, each in a thread of its own, and wait for them (each
    terminal's disconnect waits for its socket's reader; one server stopped after another
    would first take over the broker sessions of the one before)."""
    threads = [threading.Thread(target=call, daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)


def sleep_until(when: float) -> None:
    """Sleep until `when` on the perf_counter clock (at once when it has passed)."""
    delay = when - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def collect_orders(
    arrivals: queue.SimpleQueue, sent: dict[str, tuple[float, float]], wait: float = 0
) -> list[tuple[float, float, float]]:
    """Match arrived orders to the panics that caused them (the summary names the post), the
    first order of each; `sent` maps a post to its panic's (perf_counter, wall clock) publish
    time. Per match, in seconds: (publish -> terminal, publish -> order made, order made ->
    terminal)."""
    matched = []
    while True:
        try:
            received, wall, order = arrivals.get(timeout=wait) if wait else arrivals.get_nowait()
        except queue.Empty:
            return matched
        post = str(order.get("summary", "")).rsplit(" ", 1)[-1]
        published = sent.pop(post, None)
        if published is None:  # a panic's plan sends two cars: the first order counts
            log.debug("order %s matches no outstanding panic", order.get("order_id"))
            continue
        made = float(order.get("ts", math.nan))
        matched.append((received - published[0], made - published[1], wall - made))


def unit_ids(prefix: str, count: int) -> list[str]:
    width = max(4, len(str(count)))
    return [f"{prefix}{i:0{width}d}" for i in range(count)]
