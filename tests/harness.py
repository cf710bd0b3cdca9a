"""Real processes and clients for end-to-end tests: a `fieldlink server`, units, terminals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import requests
import socketio
from paho.mqtt.enums import CallbackAPIVersion
from werkzeug.security import generate_password_hash

from server.sim.local_broker import end_process, free_port, wait_for_port
from server.store import Account, create_unit, db, open_database
from server.web.accounts import token_hash
from wire import Channel, Topics, encode

FIELDLINK = str(Path(sys.executable).parent / "fieldlink")
TOPICS = Topics()
# A PostgreSQL server (postgresql://user@host:port) to run the servers' stores on; empty: SQLite
TEST_DB_URL = os.environ.get("FIELDLINK_TEST_DB_URL", "").rstrip("/")
# The local PostgreSQL that scripts/postgres.sh makes sure of, for the tests about PostgreSQL
POSTGRES_URL = os.environ.get("FIELDLINK_POSTGRES_URL", "").rstrip("/")
CREATED_DATABASES: list[tuple[str, str]] = []


def database_for(workdir: Path) -> str:
    """A test's store: SQLite in its workdir, or with FIELDLINK_TEST_DB_URL its own PostgreSQL
    database (one per workdir, so a server restarted in the same test finds what it stored)."""
    if not TEST_DB_URL:
        return f"sqlite:///{workdir / 'fieldlink.db'}"
    marker = workdir / "postgresql-database"
    if not marker.exists():
        marker.write_text(new_postgres_database(TEST_DB_URL))
    return f"{TEST_DB_URL}/{marker.read_text()}"


def new_postgres_database(server_url: str) -> str:
    """A fresh, empty database on `server_url`, dropped at the session's end; its name."""
    if not server_url:
        raise RuntimeError("no PostgreSQL: run the tests with make test (scripts/postgres.sh)")
    name = f"fieldlink_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    CREATED_DATABASES.append((server_url, name))
    return name


def drop_test_databases() -> None:
    for server_url, name in CREATED_DATABASES:
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    CREATED_DATABASES.clear()


def eventually(
    check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02, what: str = ""
) -> Any:
    """Poll until `check()` is truthy; return it, or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or check} (last: {value!r})"
    )


# every test server has this admin account (the console's login in the page tests)
ADMIN, ADMIN_PASSWORD, ADMIN_TOKEN = "admin", "test-admin-password", "test-admin-token"


def sign_up(name: str, role: str, password: str, token: str) -> None:
    """An account with a known password and token, made once per database."""
    Account.insert(
        name=name,
        role=role,
        password_hash=generate_password_hash(password),
        token_hash=token_hash(token),
        session_key="test",
    ).on_conflict_ignore().execute()


class ServerProcess:
    """`fieldlink server` as it runs in production, in its own process."""

    def __init__(
        self,
        workdir: Path,
        mqtt_url: str,
        async_mode: str = "threading",
        db_url: str = "",
        **settings: Any,
    ):
        self.workdir = workdir
        self.db_url = db_url or database_for(workdir)
        self.port = free_port()
        self.env = dict(
            os.environ,
            FIELDLINK_DB_URL=self.db_url,
            FIELDLINK_MQTT_URL=mqtt_url,
            FIELDLINK_PORT=str(self.port),
            FIELDLINK_ASYNC_MODE=async_mode,
            FIELDLINK_MQTT_CLIENT_ID=f"fieldlink-test-{uuid.uuid4().hex[:8]}",
            FIELDLINK_CONSOLE_PUSH_S="0.2",
        )
        self.env.update({f"FIELDLINK_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen | None = None
        open_database(self.db_url)
        with db.connection_context():
            sign_up(ADMIN, "admin", ADMIN_PASSWORD, ADMIN_TOKEN)
        self.token = ADMIN_TOKEN

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_unit(self, unit_id: str, kind: str = "patrol_car", **kw: Any) -> str:
        """Provision a unit in the server's database; returns its terminal token."""
        with db.connection_context():
            return create_unit(unit_id, kind, **kw).terminal_token

    def start(self) -> ServerProcess:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([FIELDLINK, "server"], env=self.env, stdout=log, stderr=log)
        wait_for_port(self.port, timeout=20)
        eventually(lambda: self.get("/healthz").get("broker"), timeout=20)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        code = end_process(self.proc, sig, timeout=20, name="fieldlink server")
        self.proc = None
        return code

    def request(self, method: str, path: str, token: str | None = None, **kw: Any):
        """An HTTP request as an account (the admin's by default; "" for none)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def get(self, path: str) -> Any:
        return self.request("GET", path).json()

    def call(self, method: str, path: str, body: Any = None, token: str | None = None):
        """A REST call: (status, JSON answer)."""
        reply = self.request(method, path, token, json=body)
        return reply.status_code, reply.json()

    def console(self, token: str | None = None) -> Console:
        return Console(self.url, self.token if token is None else token)

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(self.url + "/metrics", timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        prefix = f"{name}{{{want}}} " if labels else f"{name} "
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        return 0.0

    def log(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")


class UnitLink:
    """A unit's MQTT session as its agent would hold it, for driving the server directly."""

    def __init__(self, port: int, unit_id: str):
        self.unit_id = unit_id
        self.orders: list[dict] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{unit_id}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, m: self.orders.append(json.loads(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPICS.unit(unit_id, Channel.ORDERS), qos=1)
        self.client.loop_start()

    def send(self, channel: Channel, message: dict | bytes, topic_unit: str | None = None) -> None:
        payload = message if isinstance(message, bytes) else encode(channel, message)
        qos = 0 if channel is Channel.HEALTH else 1
        self.client.publish(
            TOPICS.unit(topic_unit or self.unit_id, channel),
            payload,
            qos=qos,
            retain=channel is Channel.STATE,
        ).wait_for_publish(5)

    def fix(self, lat: float, lon: float, ts: float | None = None) -> dict:
        fix = {"ts": ts or time.time(), "lat": lat, "lon": lon}
        self.send(Channel.POSITION, fix)
        return fix

    def online(self) -> None:
        self.send(Channel.STATE, {"online": True, "ts": time.time()})

    def panic(self, alarm_id: str | None = None) -> str:
        alarm_id = alarm_id or uuid.uuid4().hex
        self.send(Channel.ALARM, {"alarm_id": alarm_id, "ts": time.time(), "kind": "panic"})
        return alarm_id

    def ack(self, order_id: str, status: str) -> None:
        self.send(Channel.ACK, {"order_id": order_id, "ts": time.time(), "status": status})

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Terminal:
    """An in-car terminal: a real python-socketio client on `/terminal`."""

    def __init__(self, server_url: str, token: str, answer_orders: bool = True):
        self.orders: list[dict] = []
        self.answer_orders = answer_orders
        self.received = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("order", self._on_order, namespace="/terminal")
        self.sio.connect(
            server_url, namespaces=["/terminal"], auth={"token": token}, wait_timeout=10
        )
        self.sio.call("sync", namespace="/terminal", timeout=10)

    def _on_order(self, order: dict) -> bool | None:
        self.orders.append(order)
        self.received.set()
        return True if self.answer_orders else None

    def ack(self, order_id: str, status: str, **extra: Any) -> dict:
        return self.sio.call(
            "ack",
            {"order_id": order_id, "status": status, **extra},
            namespace="/terminal",
            timeout=10,
        )

    def close(self) -> None:
        self.sio.disconnect()


class Console:
    """A dispatcher's console: a real python-socketio client on `/console`, keeping events."""

    def __init__(self, server_url: str, token: str):
        self.events: list[tuple[str, Any]] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._keep, namespace="/console")
        self.sio.connect(
            server_url, namespaces=["/console"], auth={"token": token}, wait_timeout=10
        )

    def _keep(self, event: str, data: Any) -> None:
        """Changes close together come as one `changes` event; kept one by one."""
        self.events.extend(map(tuple, data) if event == "changes" else [(event, data)])

    def of(self, event: str) -> list[Any]:
        return [data for name, data in list(self.events) if name == event]

    def close(self) -> None:
        self.sio.disconnect()


class GpsFake:
    """gpsfake playing an NMEA log once into its own gpsd on a loopback port."""

    def __init__(self, log: Path, port: int | None = None, cycle_s: float = 0.01):
        self.log, self.port, self.cycle_s = log, port or free_port(), cycle_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> GpsFake:
        self.proc = subprocess.Popen(
            ["gpsfake", "-q", "-P", str(self.port), "-c", str(self.cycle_s), "-1", str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends gpsfake and its gpsd
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def nmea_slice(source: Path, dest: Path, start: int, stop: int) -> Path:
    """Lines [start, stop) of an NMEA log, so a replay takes seconds, not minutes."""
    dest.write_text("".join(source.read_text().splitlines(keepends=True)[start:stop]))
    return dest
