"""Terminals: orders at a steady rate, each to one unit's terminal, with consoles watching.

N units (a city's patrol cars and, one in five, guard posts) each hold a python-socketio
terminal on `/terminal` (websocket), spread over a few processes; C consoles listen on
`/console`. The bench dispatches R orders a second, each one unit to its own incident, by
the dispatcher's REST call `POST /api/v1/incidents/{id}/orders`, from sender threads,
round robin over the units (each unit gets an order every N/R seconds). The incidents are
made in bulk in the store before the server starts, as `create_incident` would make them,
so the window holds only the order path. Each terminal answers an order as the real one
does: the event's callback (delivered), then the `ack` event `accepted`; after `--hold-s`
it acks `cleared`, so the unit is free again for its next order.

The figure, **order made -> ack recorded**, is the order's `accepted_at - sent_at` as the
server stored them: both on the server's clock, from the moment the order is made (just
before it is stored and emitted to the terminal) to the moment the worker applies the
terminal's `accepted` ack. It is split on this machine's wall clock (the terminals live in
other processes on the same host): order made -> at the terminal, and the terminal's ack
-> its answer. The consoles, in one process, read their websockets' frames directly and
count what they get (`units` pushed every FIELDLINK_CONSOLE_PUSH_S, `order` and `incident`
on every change) and how late the `order` events are.

Baseline in the same run, per async mode: the same terminals, consoles and senders against
`bench.sio_echo`, a bare Flask-SocketIO server that emits each order and records its acks
and does nothing else (no worker, no store, no broker).

    python -m bench.terminals --terminals 500 --consoles 10 --rate 200 --seconds 30
    python -m bench.terminals --modes gevent     # one async mode
    python -m bench.terminals --quick            # a small smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import heapq
import itertools
import json
import logging
import math
import multiprocessing as mp
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import websocket
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.cli import (
    NOT_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    Run,
    add_modes,
    add_profile,
    add_run_options,
    at_least,
    parser,
)
from bench.load import (
    CITY,
    Profiler,
    cpu_seconds,
    end_child,
    provision_units,
    sqlite_path,
    unit_ids,
)
from bench.report import latency_table, machine_facts, met, print_profiles, summary_ms, table
from harness.clients import Terminal
from harness.server import ServerProcess
from harness.services import running
from server.sim.local_broker import MosquittoProcess, end_process, free_port

log = logging.getLogger(__name__)

TARGET_P99_MS = 50.0
CONSOLE_NS = "/console"
EVENT_FRAME = f"42{CONSOLE_NS},"  # Engine.IO message + Socket.IO event, then [name, data]
READY_TIMEOUT_S = 180.0  # 500 terminals connecting on a busy machine
SETTLE_S = 15.0  # longest wait for the last acks after the last order
SLICES = 5  # the window in parts, to see whether latency grows over it
INCIDENT_CATEGORY = "other"
INCIDENT_PRIORITY = 4  # the longest ack timeout: a slow terminal is measured, not escalated


# -- the one place each kind of connection is made --------------------------------------------
def rest_session(api_token: str) -> requests.Session:
    """A session for REST calls to the server under test, signed in with an API token."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_token}"
    return session


def connect_console(url: str, api_token: str) -> websocket.WebSocket:
    """A dispatcher's console joining `/console` (Engine.IO 4 over a websocket)."""
    ws = websocket.create_connection(
        url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
        timeout=30,
        skip_utf8_validation=True,  # in pure Python it would be most of a frame's cost
    )
    ws.recv()  # Engine.IO's open packet
    ws.send(f"40{CONSOLE_NS},{json.dumps({'token': api_token})}")  # connect, with its auth
    answer = ws.recv()
    if not answer.startswith(f"40{CONSOLE_NS},"):
        ws.close()
        raise RuntimeError(f"the console was refused: {answer}")
    return ws


# -- what the servers under test are ------------------------------------------------------------
@dataclass
class Fleet:
    units: list[tuple[str, str]]  # (unit id, terminal token)
    incidents: list[str]  # one per order, in sending order
    api_token: str  # the dispatcher's, for REST calls and consoles


class FieldlinkTarget:
    """A real `fieldlink server` with its broker, the units and incidents in its store."""

    name = "fieldlink"

    def __init__(self, mode: str, here: Path):
        self.mode = mode
        self.here = here
        self.db_url = f"sqlite:///{here / 'fieldlink.db'}"
        self.stack = contextlib.ExitStack()
        self.server: ServerProcess | None = None

    def start(self, terminals: int, orders: int) -> Fleet:
        rng = random.Random(11)
        posts = terminals // 5
        units = [(u, "patrol_car") for u in unit_ids("car", terminals - posts)]
        units += [(u, "guard_post") for u in unit_ids("post", posts)]
        fixes = {u: _near_city(rng) for u, _ in units}
        made = provision_units(self.db_url, units, fixes=fixes)
        incidents = provision_incidents(self.db_url, orders, rng)
        api_token = provision_dispatcher(self.db_url)
        broker = self.stack.enter_context(running(MosquittoProcess(self.here / "mq")))
        # Units here send no fixes: without this they would go offline after 120 s.
        self.server = ServerProcess(
            self.here, broker.url, self.mode, db_url=self.db_url, offline_after_s=86400
        )
        self.stack.callback(self.server.stop)
        self.server.start()
        return Fleet([(u, made[u].token) for u, _ in units], incidents, api_token)

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    @staticmethod
    def dispatch(incident_id: str, unit_id: str) -> tuple[str, dict[str, Any]]:
        return f"/api/v1/incidents/{incident_id}/orders", {"unit_ids": [unit_id]}

    def order_times(self) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(sqlite_path(self.db_url), timeout=30)) as conn:
            rows = conn.execute('SELECT id, sent_at, delivered_at, accepted_at FROM "order"')
            return [
                {"order_id": i, "sent_at": s, "delivered_at": d, "accepted_at": a}
                for i, s, d, a in rows
            ]

    def stop(self) -> None:
        self.stack.close()


class EchoTarget:
    """`bench.sio_echo`: the order path's shape on a bare Flask-SocketIO server."""

    name = "baseline: bare Socket.IO"

    def __init__(self, mode: str, here: Path):
        self.mode = mode
        self.here = here
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, terminals: int, orders: int) -> Fleet:
        self.here.mkdir(parents=True, exist_ok=True)
        options = ["--port", str(self.port), "--async-mode", self.mode]
        with open(self.here / f"echo-{self.mode}.log", "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.sio_echo", *options],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/healthz", timeout=2).ok:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the echo server did not start; see {self.here}")
            time.sleep(0.1)
        units = unit_ids("unit", terminals)
        incidents = [f"incident{i:06d}" for i in range(orders)]
        return Fleet([(u, u) for u in units], incidents, "unchecked")  # it checks no token

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @staticmethod
    def dispatch(incident_id: str, unit_id: str) -> tuple[str, dict[str, Any]]:
        return "/orders", {"unit_id": unit_id, "incident_id": incident_id}

    def order_times(self) -> list[dict[str, Any]]:
        return requests.get(self.base_url + "/orders", timeout=30).json()

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, timeout=10, name="echo server")
        self.proc = None


def _near_city(rng: random.Random) -> tuple[float, float]:
    return CITY[0] + rng.uniform(-0.1, 0.1), CITY[1] + rng.uniform(-0.15, 0.15)


def provision_incidents(db_url: str, count: int, rng: random.Random) -> list[str]:
    """`count` new incidents without orders, in bulk, as `create_incident` would make them."""
    from server.store import Incident, db, new_id, open_database

    open_database(db_url)
    now = time.time()
    rows = []
    for i in range(count):
        lat, lon = _near_city(rng)
        rows.append(
            {
                "id": new_id(),
                "category": INCIDENT_CATEGORY,
                "priority": INCIDENT_PRIORITY,
                "lat": lat,
                "lon": lon,
                "summary": f"bench incident {i}",
                "duty_level": "normal",
                "created_at": now,
            }
        )
    with db.connection_context(), db.atomic():
        for start in range(0, len(rows), 500):
            Incident.insert_many(rows[start : start + 500]).execute()
    db.close()
    return [r["id"] for r in rows]


def provision_dispatcher(db_url: str) -> str:
    """A dispatcher's account; its API token."""
    from server.store import db, open_database
    from server.web import accounts

    open_database(db_url)
    with db.connection_context():
        token = accounts.add("bench-dispatcher", "dispatcher").api_token
    db.close()
    assert token is not None
    return token


# -- terminals, in their own processes -------------------------------------------------------
@dataclass(slots=True)
class Seen:
    """One order as its terminal saw it; times are epoch seconds on this machine."""

    order_id: str
    incident_id: str
    made: float  # the order's `ts`: when the server made it (server clock, same machine)
    received: float
    ack_sent: float = math.nan
    ack_answered: float = math.nan
    ack_ok: bool = False


class Actions:
    """One thread per process sends the terminals' acks, now or later, so no event handler
    waits on the network (a handler runs on its client's only reader thread)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + delay_s, next(self._order), action))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._running and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._wake.wait(wait)
                if not self._running:
                    return
                _, _, action = heapq.heappop(self._due)
            try:
                action()
            except Exception as exc:  # a closed socket at the end of the run
                log.debug("terminal action failed: %s", exc)

    def stop(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify()
        self._thread.join(timeout=5)


class Book:
    """What a process's terminals saw, and shared counters the bench reads for progress."""

    NAMES = ("received", "accepted", "cleared", "refused")

    def __init__(self, counters: Any):
        self.seen: list[Seen] = []
        self.counters = counters
        self._lock = threading.Lock()

    def add(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)
            self.counters[0] += 1

    def count(self, name: str) -> None:
        with self._lock:
            self.counters[self.NAMES.index(name)] += 1


class Crew:
    """A unit's crew at its terminal: each dispatch order (confirmed by the terminal's
    callback) is accepted at once and cleared `hold_s` after the server took the accept."""

    def __init__(self, token: str, url: str, actions: Actions, book: Book, hold_s: float):
        self.actions = actions
        self.book = book
        self.hold_s = hold_s
        self.terminal = Terminal(
            url,
            token,
            on_order=self._on_order,
            sync=False,  # every order is sent after it connects
            websocket_only=True,
            connect_timeout=30,
        )

    def _on_order(self, order: dict[str, Any], _at: float, wall: float) -> None:
        if order.get("kind") == "dispatch":
            seen = Seen(order["order_id"], order["incident_id"], float(order["ts"]), wall)
            self.book.add(seen)
            self.actions.later(0, lambda: self._ack(seen, "accepted"))

    def _ack(self, seen: Seen, status: str) -> None:
        if status == "accepted":
            seen.ack_sent = time.time()
        self.terminal.ack_then(
            seen.order_id, status, lambda answer=None: self._answered(seen, status, answer)
        )

    def _answered(self, seen: Seen, status: str, answer: Any) -> None:
        ok = isinstance(answer, dict) and bool(answer.get("ok"))
        if status == "accepted":
            seen.ack_answered, seen.ack_ok = time.time(), ok
            if ok:
                self.actions.later(self.hold_s, lambda: self._ack(seen, "cleared"))
        self.book.count(status if ok else "refused")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a socket the server closed first
            self.terminal.close()


def _terminal_process(
    index: int,
    url: str,
    tokens: list[str],
    hold_s: float,
    counters: Any,
    ready: Any,
    stop: Any,
    results: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bench decides when to stop
    actions = Actions()
    book = Book(counters)

    def connect(token: str) -> Crew | None:
        try:
            return Crew(token, url, actions, book, hold_s)
        except Exception as exc:
            log.warning("terminal did not connect: %s", exc)
            return None

    with ThreadPoolExecutor(16) as pool:
        crews = list(pool.map(connect, tokens))
    failed = crews.count(None)
    freeze_heap()
    ready.put((index, failed))
    stop.wait()
    actions.stop()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(Crew.close, [crew for crew in crews if crew is not None]))
    results.put((index, [_fields(s) for s in book.seen]))


def freeze_heap() -> None:
    """The load generators' set-up (clients, fleet, connections) out of the collector's full
    passes: a process holds 125 terminals, where a real one holds one, and a pass over them
    stalled all of them at once (tens of ms), counted as the server's latency."""
    gc.collect()
    gc.freeze()


def _fields(seen: Seen) -> tuple:
    return (
        seen.order_id,
        seen.incident_id,
        seen.made,
        seen.received,
        seen.ack_sent,
        seen.ack_answered,
        seen.ack_ok,
    )


class TerminalProcesses:
    """The terminals spread over a few processes, so the clients are not the bottleneck."""

    def __init__(self, url: str, tokens: list[str], processes: int, hold_s: float):
        self.ctx = mp.get_context("spawn")
        self.ready = self.ctx.Queue()
        self.results = self.ctx.Queue()
        self.halt = self.ctx.Event()
        shares = [tokens[i::processes] for i in range(min(processes, len(tokens)))]
        self.counters = [self.ctx.Array("q", len(Book.NAMES), lock=False) for _ in shares]
        self.procs = [
            self.ctx.Process(
                target=_terminal_process,
                args=(i, url, share, hold_s, self.counters[i], self.ready, self.halt, self.results),
                daemon=True,
            )
            for i, share in enumerate(shares)
        ]

    def start(self) -> TerminalProcesses:
        for proc in self.procs:
            proc.start()
        failed = 0
        for _ in self.procs:
            try:
                failed += self.ready.get(timeout=READY_TIMEOUT_S)[1]
            except queue.Empty:
                self.close()
                raise RuntimeError("the terminals did not connect in time") from None
        if failed:
            self.close()
            raise RuntimeError(f"{failed} terminals could not connect")
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def count(self, name: str) -> int:
        at = Book.NAMES.index(name)
        return sum(c[at] for c in self.counters)

    def stop(self) -> list[Seen]:
        self.halt.set()
        seen: list[Seen] = []
        for _ in self.procs:
            try:
                seen += [Seen(*f) for f in self.results.get(timeout=60)[1]]
            except queue.Empty:
                log.warning("a terminal process did not report")
        self.close()
        return seen

    def close(self) -> None:
        self.halt.set()
        for proc in self.procs:
            end_child(proc, timeout=10)


# -- consoles, in one process --------------------------------------------------------------------
class ConsoleFeed:
    """A dispatcher's console reading Socket.IO frames straight off its websocket: it counts
    every event and decodes only `order` events (for their lag). python-socketio's client
    starts a thread per message: ten of them, at thousands of events a second, would take
    more of this machine than the server under test gets."""

    def __init__(self, url: str, api_token: str):
        self.ws = connect_console(url, api_token)
        self.tally: Counter[str] = Counter()
        self.lags: list[float] = []  # `order` events: arrival - the newest step time in them

    def run(self, stop: Any) -> None:
        self.ws.settimeout(0.5)
        while not stop.is_set():
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketException:
                return
            if frame == "2":  # the server's ping
                self.ws.send("3")
            elif frame.startswith(EVENT_FRAME):
                event = frame[len(EVENT_FRAME) + 2 : frame.find('"', len(EVENT_FRAME) + 2)]
                self.tally[event] += 1
                if event not in ("changes", "order"):
                    continue
                decoded = json.loads(frame[len(EVENT_FRAME) :])
                if event == "order":
                    self._lag(decoded[1])
                    continue
                for name, data in decoded[1]:  # changes close together, as one event
                    self.tally[name] += 1
                    if name == "order":
                        self._lag(data)

    def _lag(self, order: dict[str, Any]) -> None:
        steps = [v for k, v in order.items() if k.endswith("_at") and v is not None]
        if steps:
            self.lags.append(time.time() - max(steps))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def _console_process(
    url: str, api_token: str, count: int, ready: Any, stop: Any, results: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    feeds = [ConsoleFeed(url, api_token) for _ in range(count)]
    readers = [threading.Thread(target=f.run, args=(stop,), daemon=True) for f in feeds]
    for reader in readers:
        reader.start()
    freeze_heap()
    ready.set()
    stop.wait()
    for reader in readers:
        reader.join(timeout=5)
    for feed in feeds:
        feed.close()
    lags = [lag for f in feeds for lag in f.lags]
    results.put({"tallies": [dict(f.tally) for f in feeds], "lag": summary_ms(lags)})


class ConsoleProcess:
    def __init__(self, url: str, api_token: str, count: int):
        self.ctx = mp.get_context("spawn")
        self.ready = self.ctx.Event()
        self.halt = self.ctx.Event()
        self.results = self.ctx.Queue()
        self.proc = self.ctx.Process(
            target=_console_process,
            args=(url, api_token, count, self.ready, self.halt, self.results),
            daemon=True,
        )

    def start(self) -> ConsoleProcess:
        self.proc.start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.close()
            raise RuntimeError("the consoles did not connect in time")
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def stop(self) -> dict[str, Any]:
        self.halt.set()
        try:
            return self.results.get(timeout=30)
        except queue.Empty:
            return {"tallies": [], "lag": summary_ms([])}
        finally:
            self.close()

    def close(self) -> None:
        self.halt.set()
        end_child(self.proc, timeout=10)


# -- the dispatcher's REST calls ------------------------------------------------------------------
@dataclass(slots=True)
class Dispatched:
    incident_id: str
    due: float  # when the schedule wanted the call to start
    started: float
    answered: float
    status: int  # HTTP status, 0 when the call failed


def send_orders(
    target: FieldlinkTarget | EchoTarget,
    fleet: Fleet,
    rate: float,
    seconds: float,
    senders: int,
    progress: Callable[[float], None],
) -> list[Dispatched]:
    """Dispatch `rate` orders a second for `seconds`, unit by unit round robin. A call waits
    for a free sender, so a slow server lowers the rate; calls that could not start within
    the window are not made (the server could not take them), so the window stays `seconds`."""
    schedule = [u for u, _ in fleet.units]
    random.Random(5).shuffle(schedule)
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    done: list[Dispatched] = []

    def sender() -> None:
        session = rest_session(fleet.api_token)
        while (item := due.get()) is not None:
            i, when = item
            if time.time() > window_end:
                continue
            incident = fleet.incidents[i]
            path, body = target.dispatch(incident, schedule[i % len(schedule)])
            started = time.time()
            try:
                status = session.post(target.base_url + path, json=body, timeout=30).status_code
            except requests.RequestException as exc:
                log.warning("dispatch failed: %s", exc)
                status = 0
            done.append(Dispatched(incident, when, started, time.time(), status))

    total = min(int(rate * seconds), len(fleet.incidents))
    t0, wall0 = time.perf_counter(), time.time()
    window_end = wall0 + seconds
    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    shown = 0.0
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((i, wall0 + i / rate))
        elapsed = time.perf_counter() - t0
        if elapsed - shown >= 0.25:
            progress(elapsed)
            shown = elapsed
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join(timeout=60)
    progress(time.perf_counter() - t0)
    return done


# -- one run against one server ----------------------------------------------------------------
@dataclass
class RunResult:
    mode: str
    target: str
    rate: float
    offered: int = 0
    dispatched: list[Dispatched] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    times: list[dict[str, Any]] = field(default_factory=list)  # the server's order times
    consoles: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core over the window
    window_s: float = math.nan
    profile: str = ""

    @property
    def sent_ok(self) -> list[Dispatched]:
        return [d for d in self.dispatched if d.status == 201]

    def made_to_ack(self) -> list[float]:
        return [t["accepted_at"] - t["sent_at"] for t in self.times if t.get("accepted_at")]

    def made_to_delivered(self) -> list[float]:
        return [t["delivered_at"] - t["sent_at"] for t in self.times if t.get("delivered_at")]

    def made_to_terminal(self) -> list[float]:
        return [s.received - s.made for s in self.seen]

    def ack_round_trip(self) -> list[float]:
        return [s.ack_answered - s.ack_sent for s in self.seen if s.ack_ok]

    def call_to_terminal(self) -> list[float]:
        started = {d.incident_id: d.started for d in self.sent_ok}
        return [s.received - started[s.incident_id] for s in self.seen if s.incident_id in started]

    def rest_call(self) -> list[float]:
        return [d.answered - d.started for d in self.sent_ok]

    def start_late(self) -> list[float]:
        """How late the dispatch calls started: every sender was waiting for an answer."""
        return [max(d.started - d.due, 0.0) for d in self.dispatched]

    def acked(self) -> int:
        return len(self.made_to_ack())

    def orders_per_s(self) -> float:
        """Orders accepted per second: first dispatch call -> last ack recorded."""
        acks = [t["accepted_at"] for t in self.times if t.get("accepted_at")]
        if not acks or not self.dispatched:
            return math.nan
        return len(acks) / max(max(acks) - min(d.started for d in self.dispatched), 1e-9)

    def server_ms_per_order(self) -> float:
        """The server's CPU over the window per order acked: 1000 / this is what one core
        of this machine could take, in orders a second."""
        used_s = self.cpu.get("server", math.nan) / 100 * self.window_s
        return 1000 * used_s / self.acked() if self.acked() else math.nan

    def slices_p99(self) -> list[float]:
        """p99 of made -> ack per part of the window, in the order the orders were made."""
        acked = [t for t in self.times if t.get("accepted_at")]
        timed = sorted((t["sent_at"], t["accepted_at"] - t["sent_at"]) for t in acked)
        size = math.ceil(len(timed) / SLICES) if timed else 0
        return [
            summary_ms([v for _, v in timed[i : i + size]])["p99"]
            for i in range(0, len(timed), size or 1)
        ]

    def kept_up(self) -> tuple[bool, str]:
        """Whether the server kept pace: every order made was acked, (nearly) the offered
        rate was dispatched, refusals none, and latency did not grow across the window."""
        problems = []
        if len(self.sent_ok) < 0.95 * self.offered:
            problems.append(f"dispatched {len(self.sent_ok)}/{self.offered}")
        if not self.orders_per_s() >= 0.95 * self.rate:
            problems.append(f"{self.orders_per_s():.0f} orders/s acked of {self.rate:g}")
        if self.acked() < len(self.sent_ok):
            problems.append(f"{len(self.sent_ok) - self.acked()} orders without an ack")
        refused = len(self.dispatched) - len(self.sent_ok)
        if refused:
            problems.append(f"{refused} dispatch calls refused or failed")
        slices = self.slices_p99()
        if len(slices) >= 2 and slices[-1] > max(2 * slices[0], TARGET_P99_MS):
            problems.append(f"p99 grew from {slices[0]:.0f} to {slices[-1]:.0f} ms")
        return not problems, "; ".join(problems) or "none"


def run_target(args: argparse.Namespace, target: FieldlinkTarget | EchoTarget) -> RunResult:
    result = RunResult(target.mode, target.name, args.rate, int(args.rate * args.seconds))
    terminals: TerminalProcesses | None = None
    consoles: ConsoleProcess | None = None
    profiler: Profiler | None = None
    err = Console(stderr=True)
    try:
        with err.status(f"{target.name} ({target.mode}): starting"):
            fleet = target.start(args.terminals, result.offered)
            terminals = TerminalProcesses(
                target.base_url, [t for _, t in fleet.units], args.terminal_processes, args.hold_s
            ).start()
            consoles = ConsoleProcess(target.base_url, fleet.api_token, args.consoles).start()
        pids = {
            "server": target.pid,
            "terminals": terminals.pids,
            "consoles": [consoles.pid] if consoles.pid else [],
            "bench": [os.getpid()],
        }
        freeze_heap()
        if args.profile and isinstance(target, FieldlinkTarget):
            out = target.here / f"py-spy-{target.mode}.txt"
            profiler = Profiler(target.pid, out, args.seconds).start()
        cpu0 = _cpu(pids)
        started = time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("", total=args.seconds)

            def show(elapsed: float) -> None:
                bar.update(
                    task,
                    completed=elapsed,
                    description=f"{target.name} ({target.mode}): "
                    f"{terminals.count('received')} orders at terminals, "
                    f"{terminals.count('accepted')} accepted",
                )

            result.dispatched = send_orders(
                target, fleet, args.rate, args.seconds, args.senders, show
            )
            wanted = sum(1 for d in result.dispatched if d.status == 201)
            settle = time.monotonic() + SETTLE_S
            while terminals.count("accepted") < wanted and time.monotonic() < settle:
                show(time.perf_counter() - started)
                time.sleep(0.1)
        result.window_s = time.perf_counter() - started
        cpu1 = _cpu(pids)
        result.cpu = {k: 100 * (cpu1[k] - cpu0[k]) / result.window_s for k in cpu0}
        if profiler is not None:
            result.profile = profiler.summary()
        time.sleep(args.hold_s + 0.5)  # the last clears, so the store is as the run left it
        result.consoles = consoles.stop()
        result.seen = terminals.stop()
        result.times = target.order_times()
    finally:
        if profiler is not None:
            profiler.stop()
        if consoles is not None:
            consoles.close()
        if terminals is not None:
            terminals.close()
        target.stop()
    return result


def _cpu(pids: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, which in pids.items():
        out[name] = sum(cpu_seconds(p) for p in (which if isinstance(which, list) else [which]))
    return out


# -- the whole run -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = parser(
        "bench.terminals",
        "Orders to single terminals at a steady rate, with consoles watching: order made -> "
        "ack recorded, beside a bare Socket.IO server doing only that.",
        quick="a small smoke run",
    )
    options.add_argument(
        "--terminals", type=POSITIVE_INT, default=500, help="units with terminals [500]"
    )
    options.add_argument(
        "--consoles", type=at_least(int, 0), default=10, help="consoles listening [10]"
    )
    options.add_argument("--rate", type=POSITIVE, default=200.0, help="orders per second [200]")
    options.add_argument("--seconds", type=POSITIVE, default=30.0, help="how long to send [30]")
    add_modes(options)
    options.add_argument(
        "--hold-s", type=NOT_NEGATIVE, default=0.5, help="accepted -> cleared [0.5]"
    )
    options.add_argument(
        "--terminal-processes",
        type=POSITIVE_INT,
        default=4,
        help="processes the terminals share [4]",
    )
    options.add_argument(
        "--senders", type=POSITIVE_INT, default=32, help="REST sender threads [32]"
    )
    add_profile(options, "during the orders")
    add_run_options(options)
    args = options.parse_args(argv)
    if args.quick:
        args.terminals, args.consoles, args.rate, args.seconds = 20, 2, 10.0, 3.0
        args.terminal_processes = 2
    return args


def render(results: list[RunResult]) -> str:
    return latency_table(
        ["mode", "server", "path"],
        (
            ([r.mode, r.target, name], values)
            for r in results
            for name, values in (
                ("order made -> ack recorded", r.made_to_ack()),
                ("  made -> at terminal", r.made_to_terminal()),
                ("  terminal ack -> answer", r.ack_round_trip()),
                ("made -> delivered recorded", r.made_to_delivered()),
                ("REST dispatch -> at terminal", r.call_to_terminal()),
                ("REST dispatch call", r.rest_call()),
            )
        ),
        stats=("p50", "p95", "p99", "max"),
    )


def render_load(results: list[RunResult]) -> str:
    rows = []
    for r in results:
        tallies = r.consoles.get("tallies") or []
        per_console = Counter()
        for t in tallies:
            per_console.update(t)
        n = max(len(tallies), 1)
        rows.append(
            [
                r.mode,
                r.target,
                f"{len(r.sent_ok):,}/{r.offered:,}",
                r.orders_per_s(),
                summary_ms(r.start_late())["p99"],
                " ".join(f"{v:.0f}" for v in r.slices_p99()),
                " ".join(f"{k} {v / n:,.0f}" for k, v in sorted(per_console.items())) or "-",
                r.consoles.get("lag", {}).get("p99", math.nan),
                r.cpu.get("server", math.nan),
                r.server_ms_per_order(),
                r.cpu.get("terminals", math.nan),
                r.cpu.get("consoles", math.nan),
                r.cpu.get("bench", math.nan),
            ]
        )
    return table(
        [
            "mode",
            "server",
            "dispatched",
            "acked/s",
            "calls late p99 ms",
            "p99 ms by fifth",
            "per console",
            "console lag p99 ms",
            "CPU % server",
            "server CPU ms/order",
            "terminals",
            "consoles",
            "bench",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[RunResult] = []
    with Run(args, "terminals") as run:
        print(f"machine: {machine_facts()}; load average {os.getloadavg()[0]:.1f} at the start")
        print(
            f"{args.terminals} terminals in {args.terminal_processes} processes, "
            f"{args.consoles} consoles, {args.rate:g} orders/s for {args.seconds:g} s from "
            f"{args.senders} REST senders, cleared {args.hold_s:g} s after accepting",
            flush=True,
        )
        for mode in args.modes:
            here = run.workdir / mode
            for target in (EchoTarget(mode, here), FieldlinkTarget(mode, here)):
                results.append(run_target(args, target))
                r = results[-1]
                ok, why = r.kept_up()
                run.progress(
                    f"{mode}, {r.target}: {r.acked():,}/{len(r.sent_ok):,} orders acked, p99 "
                    f"{summary_ms(r.made_to_ack())['p99']:.1f} ms, "
                    f"{'kept up' if ok else 'fell behind: ' + why}"
                )
    print()
    print(render(results))
    print()
    print(render_load(results))
    print()
    print(
        "order made -> ack recorded: the order's accepted_at - sent_at as the server stored "
        "them (server clock): made, stored, emitted, at the terminal, its `accepted` ack "
        "applied by the worker. Splits on this host's wall clock. CPU in % of one core over "
        "the window."
    )
    print(f"target: order made -> ack recorded p99 <= {TARGET_P99_MS:g} ms, no collapse")
    for line in verdicts(results, args.rate):
        print("  " + line)
    print_profiles((f"{r.mode}, during the orders", r.profile) for r in results)
    print(run.took())
    return 0


def verdicts(results: list[RunResult], rate: float) -> list[str]:
    """Each fieldlink run beside the bare Socket.IO server's in the same mode."""
    baseline = {r.mode: r for r in results if r.target != FieldlinkTarget.name}
    lines = []
    for r in results:
        if r.target != FieldlinkTarget.name:
            continue
        p99 = summary_ms(r.made_to_ack())["p99"]
        base = summary_ms(baseline[r.mode].made_to_ack())["p99"] if r.mode in baseline else math.nan
        ok, why = r.kept_up()
        lines.append(
            f"{r.mode:9}: p99 {p99:.1f} ms ({met(p99 <= TARGET_P99_MS)}; "
            f"bare Socket.IO {base:.1f} ms), {r.orders_per_s():.0f} orders/s acked of "
            f"{rate:g} offered, collapse: {'none' if ok else why}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
