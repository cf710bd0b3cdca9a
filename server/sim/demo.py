"""`fieldlink demo`: a broker, the real server and a simulated fleet in one command.

Start-up is a checklist (database, broker, server, fleet) and every step registers its stop
on one exit stack, so Ctrl-C or SIGTERM stops them in reverse order: fleet, server, broker.
The server runs as `fieldlink server` in a child process, exactly as in production.

The broker is mosquitto where installed, else the embedded amqtt broker;
FIELDLINK_DEMO_BROKER=embedded (or mosquitto) chooses one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import socketio
from rich.console import Console

from server.ingest.osm_extract import read_extract
from server.sim.local_broker import (
    BROKER_CHOICES,
    LocalBroker,
    MosquittoProcess,
    end_process,
    free_port,
    local_broker,
)
from server.sim.simulator import City, Fleet, UnitSpec, layout_fleet
from server.store import create_unit, db, open_database, save_grids, save_street_map
from server.web import accounts

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
STATUS_EVERY_S = 5.0
LOG_TAIL_LINES = 20
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# the command centre's account in a demo's database: an admin, its password printed
DESK_ACCOUNT = "demo"
# the demo's city: central Helsinki, whose real OpenStreetMap extract is the console's street
# map (maps/README.md); two grids of 8 x 8 blocks of 100 m fit the extract's 1.0 x 1.7 km
STREET_MAP = Path(__file__).resolve().parent / "maps" / "Helsinki.osm.pbf"
DEMO_CITY = City(lat=60.1713, lon=24.9441, block_m=100.0, grid_blocks=8, grids=2, cols=1)


class DemoError(Exception):
    """A start-up failure; the text says what happened and what to do."""


def run_demo(
    port: int | None,
    cars: int,
    kiosks: int,
    panic_every: float,
    async_mode: str | None,
) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop, 1 on a failure, 2 on bad options."""
    console = Console(highlight=False, soft_wrap=True)
    broker = os.environ.get("FIELDLINK_DEMO_BROKER") or "auto"
    try:
        check_options(cars, kiosks, panic_every, broker)
        port = port or free_port()
        check_port_free(port)
    except DemoError as exc:
        console.print(f"[red]fieldlink demo:[/] {exc}")
        return 2
    with stopped_by_signals() as stop:
        try:
            with ExitStack() as stack:
                demo = Demo(console, stack, stop, port, async_mode)
                demo.start(cars, kiosks, panic_every, broker)
                return demo.watch()
        except DemoError as exc:
            console.print(f"[red]fieldlink demo failed:[/] {exc}")
            return 1


@contextmanager
def stopped_by_signals() -> Iterator[threading.Event]:
    """An event that SIGINT or SIGTERM sets while in the block, so the run stops in order."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    logging.getLogger("amqtt").setLevel(logging.WARNING)  # its per-connection INFO drowns ours
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_options(cars: int, kiosks: int, panic_every: float, broker: str) -> None:
    if broker not in BROKER_CHOICES:
        raise DemoError(f"FIELDLINK_DEMO_BROKER={broker!r}: use {', '.join(BROKER_CHOICES)}")
    if cars < 0 or kiosks < 0:
        raise DemoError("--cars and --kiosks must be 0 or more")
    if panic_every <= 0:
        raise DemoError("--panic-every must be a number of seconds above 0")


def check_port_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(f"port {port} is in use: choose another with --port") from None


def fieldlink_command() -> list[str]:
    """The installed `fieldlink` script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "fieldlink"
    found = str(beside) if beside.exists() else shutil.which("fieldlink")
    if found is None:
        raise DemoError("the fieldlink command is not installed: pip install -e '.[server]'")
    return [found]


def provision(
    db_url: str, city: City, specs: list[UnitSpec], street_map: Path | None = None
) -> tuple[dict[str, str], accounts.Credentials]:
    """Create the city's grids (and its street map, from an OpenStreetMap extract), the
    units and the command centre's account in a fresh database: the units' tokens by id,
    and the account's password and API token."""
    open_database(db_url)
    with db.connection_context(), db.atomic():
        save_grids(city.grid_shapes())
        if street_map:
            save_street_map(read_extract(street_map))
        units = [create_unit(s.unit_id, s.kind, grid=s.grid, name=s.name) for s in specs]
        desk = accounts.add(DESK_ACCOUNT, "admin")
    return {new.unit.id: new.terminal_token for new in units}, desk


def get_json(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urlopen(Request(url, headers=headers), timeout=2) as response:
        return json.load(response)


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


class Demo:
    """One demo run: what it started, and the stops registered on `stack`."""

    def __init__(
        self,
        console: Console,
        stack: ExitStack,
        stop: threading.Event,
        port: int,
        async_mode: str | None,
        city: City | None = None,
    ) -> None:
        self.console = console
        self.stack = stack
        self.stop = stop
        self.port = port
        self.async_mode = async_mode
        self.url = f"http://127.0.0.1:{port}"
        self.city = city or DEMO_CITY
        self.workdir = Path(
            stack.enter_context(
                TemporaryDirectory(prefix="fieldlink-demo-", ignore_cleanup_errors=True)
            )
        )
        self.server_log = self.workdir / "server.log"
        self.db_url = f"sqlite:///{self.workdir / 'fieldlink.db'}"
        self.server: subprocess.Popen | None = None
        self.fleet: Fleet | None = None

    def start(self, cars: int, kiosks: int, panic_every: float, broker_choice: str) -> None:
        """The checklist: database, broker, server, fleet; each one's stop goes on the stack."""
        specs = layout_fleet(self.city, cars, kiosks, random.Random())
        tokens, self.desk = provision(self.db_url, self.city, specs, STREET_MAP)
        broker = self.start_broker(broker_choice)
        self.start_server(broker)
        self.wait_ready()
        if self.stop.is_set():
            return  # stopped while starting: nothing more to start
        self.fleet = Fleet(
            self.city, specs, tokens, broker.url, broker.protocol, self.url, panic_every
        )
        self.stack.callback(self.fleet.stop)
        try:
            self.fleet.start()
        except socketio.exceptions.ConnectionError as exc:
            raise DemoError(f"the simulated terminals could not connect: {exc}") from None
        self.banner(specs, tokens, broker, panic_every)

    def start_broker(self, choice: str) -> LocalBroker:
        try:
            broker = local_broker(self.workdir / "broker", prefer=choice)
        except FileNotFoundError as exc:
            raise DemoError(f"{exc}, or use FIELDLINK_DEMO_BROKER=embedded") from None
        except (OSError, RuntimeError, TimeoutError) as exc:
            raise DemoError(f"the MQTT broker did not start: {exc}") from None
        self.stack.callback(broker.stop)
        return broker

    def start_server(self, broker: LocalBroker, settings: dict[str, str] | None = None) -> None:
        """`fieldlink server` as a child, configured by FIELDLINK_* variables (and `settings`)."""
        env = {
            **os.environ,
            "FIELDLINK_HOST": "127.0.0.1",
            "FIELDLINK_PORT": str(self.port),
            "FIELDLINK_DB_URL": self.db_url,
            "FIELDLINK_MQTT_URL": broker.url,
            "FIELDLINK_MQTT_PROTOCOL": broker.protocol,
            **(settings or {}),
        }
        if self.async_mode:
            env["FIELDLINK_ASYNC_MODE"] = self.async_mode
        with self.server_log.open("ab") as out:
            # its own session, so a Ctrl-C reaches only us and we stop it after the fleet
            self.server = subprocess.Popen(
                [*fieldlink_command(), "server"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.stack.callback(self.stop_server)

    def stop_server(self) -> None:
        if self.server is not None:
            end_process(self.server, timeout=STOP_TIMEOUT_S, name="the server")

    def wait_ready(self) -> None:
        """Until /healthz says the server runs and holds its broker session."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stop.is_set():
            self.check_server()
            try:
                health = get_json(f"{self.url}/healthz")
            except (URLError, OSError, ValueError):
                health = {}
            if health.get("ok") and health.get("broker"):
                return
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the server was not ready after {READY_TIMEOUT_S:.0f}s; "
                    f"its log ends:\n{log_tail(self.server_log)}"
                )
            time.sleep(0.2)

    def check_server(self) -> None:
        assert self.server is not None
        code = self.server.poll()
        if code is None:
            return
        tail = log_tail(self.server_log)
        hint = " (port in use: choose another with --port)" if "in use" in tail else ""
        raise DemoError(f"the server exited with code {code}{hint}; its log ends:\n{tail}")

    def banner(
        self, specs: list[UnitSpec], tokens: dict[str, str], broker: LocalBroker, panic_every: float
    ) -> None:
        cars = [s for s in specs if s.kind == "patrol_car"]
        kiosks = [s for s in specs if s.kind == "guard_post"]
        kind = "mosquitto" if isinstance(broker, MosquittoProcess) else "embedded amqtt"
        print_ = self.console.print
        print_(
            f"[bold]fieldlink demo[/]: {len(cars)} patrol cars, {len(kiosks)} guard kiosks "
            f"around ({self.city.lat}, {self.city.lon})"
        )
        print_(f"  console   {self.url}/  (sign in: {self.desk.name} / {self.desk.password})")
        for unit in cars[:1] + kiosks[:1]:
            page = "terminal" if unit.kind == "patrol_car" else "kiosk"
            print_(f"  {unit.unit_id:<9} {self.url}/{page}?token={tokens[unit.unit_id]}")
        print_(f"  broker    {broker.url} ({kind}, MQTT {broker.protocol})")
        print_(f"  panics    every {panic_every:g} s on average; Ctrl-C stops everything")

    def watch(self) -> int:
        """A status line every few seconds until a stop signal; 0 then."""
        while not self.stop.wait(STATUS_EVERY_S):
            self.check_server()
            self.console.print(self.status_line())
        self.console.print("stopping: fleet, server, broker")
        return 0

    def status_line(self) -> str:
        assert self.fleet is not None
        try:
            units = get_json(f"{self.url}/api/v1/units", self.desk.api_token)
            incidents = get_json(f"{self.url}/api/v1/incidents", self.desk.api_token)
        except (URLError, OSError, ValueError) as exc:
            return f"[yellow]server not answering: {exc}[/]"
        online = sum(1 for u in units if u["online"])
        still_open = sum(1 for i in incidents if i["state"] not in ("resolved", "closed"))
        stats = self.fleet.stats
        return (
            f"[dim]{time.strftime('%H:%M:%S')}[/] units online {online}/{len(units)} · "
            f"incidents {len(incidents)} ({still_open} open) · "
            f"acks {stats.acks} ({stats.declines} declined) · panics {stats.panics}"
        )
