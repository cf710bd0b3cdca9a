"""A real `fieldlink server` in its own process, as tests and benchmarks run it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from werkzeug.security import generate_password_hash

from harness.clients import Console
from harness.stores import database_for
from server.sim.local_broker import end_process, free_port
from server.store import Account, create_unit, db, open_database, token_digest

FIELDLINK = str(Path(sys.executable).parent / "fieldlink")
# every server started here has this admin account (the console's login in the page tests)
ADMIN, ADMIN_PASSWORD, ADMIN_TOKEN = "admin", "test-admin-password", "test-admin-token"


def fieldlink_command() -> list[str]:
    """The `fieldlink` console script of this interpreter's environment, or an equivalent."""
    if Path(FIELDLINK).exists():
        return [FIELDLINK]
    return [sys.executable, "-c", "from server.cli import main; main()"]


def _sign_up(name: str, role: str, password: str, token: str) -> None:
    """An account with a known password and token, made once per database."""
    Account.insert(
        name=name,
        role=role,
        password_hash=generate_password_hash(password),
        token_hash=token_digest(token),
        session_key="test",
    ).on_conflict_ignore().execute()


class ServerProcess:
    """`fieldlink server` as it runs in production, configured only through FIELDLINK_*
    variables: `settings` name them in lower case without the prefix (`redis_url=...`).

    Its store is `db_url`, else `database_for(workdir)`; the store is opened in this process
    too (so a test can read it) and given the admin account the REST helpers sign in with.
    """

    def __init__(
        self,
        workdir: Path,
        mqtt_url: str,
        async_mode: str = "threading",
        db_url: str = "",
        **settings: Any,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url or database_for(self.workdir)
        self.port = free_port()
        self.env = {
            **os.environ,
            "FIELDLINK_HOST": "127.0.0.1",
            "FIELDLINK_PORT": str(self.port),
            "FIELDLINK_DB_URL": self.db_url,
            "FIELDLINK_MQTT_URL": mqtt_url,
            "FIELDLINK_ASYNC_MODE": async_mode,
            "FIELDLINK_MQTT_CLIENT_ID": f"harness-server-{uuid.uuid4().hex[:8]}",
        }
        self.env.update({f"FIELDLINK_{k.upper()}": str(v) for k, v in settings.items()})
        self.log_path = self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        open_database(self.db_url)
        with db.connection_context():
            _sign_up(ADMIN, "admin", ADMIN_PASSWORD, ADMIN_TOKEN)
        self.token = ADMIN_TOKEN

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    def command(self, *args: str) -> subprocess.CompletedProcess:
        """`fieldlink ARGS --db-url <this server's store>`, as an operator runs it beside it."""
        return subprocess.run(
            [FIELDLINK, *args, "--db-url", self.db_url],
            env=self.env,  # the server's settings, as the operator's shell would have them
            capture_output=True,
            text=True,
            timeout=60,
        )

    def add_unit(self, unit_id: str, kind: str = "patrol_car", **kw: Any) -> str:
        """Provision a unit in the server's database; returns its terminal token."""
        with db.connection_context():
            return create_unit(unit_id, kind, **kw).terminal_token

    def _spawn(self) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [*fieldlink_command(), "server"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start it and wait until it is ready: /healthz ok, its broker sessions subscribed.
        A server that exits first, or is not ready within `timeout`, fails here."""
        self.proc = self._spawn()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"fieldlink server exited with {self.proc.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server not ready after {timeout}s; see {self.log_path}")
            time.sleep(0.05)
        return self

    def run_to_exit(self, timeout: float) -> int:
        """Run one that should refuse to start (it may be ready for a moment first): its
        exit status. One still running after `timeout` is killed, and fails here."""
        proc = self._spawn()
        try:
            return proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()

    def ready(self) -> bool:
        health = self.health()
        return bool(health.get("ok") and health.get("broker"))

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
        headers.update(kw.pop("headers", {}))
        kw.setdefault("timeout", 10)
        return requests.request(method, self.url + path, headers=headers, **kw)

    def get(self, path: str) -> Any:
        return self.request("GET", path).json()

    def call(self, method: str, path: str, body: Any = None, token: str | None = None):
        """A REST call: (status, JSON answer)."""
        reply = self.request(method, path, token, json=body)
        return reply.status_code, reply.json()

    def new_incident(
        self, category: str, at: tuple[float, float], priority: int = 3, **fields: Any
    ) -> dict[str, Any]:
        """An incident made through the REST API, as a dispatcher makes one."""
        body = {"category": category, "priority": priority, **fields}
        body["location"] = {"lat": at[0], "lon": at[1]}
        status, incident = self.call("POST", "/api/v1/incidents", body)
        assert status == 201, incident
        return incident

    def dispatch(self, incident_id: str, *unit_ids: str) -> list[dict[str, Any]]:
        """A dispatcher sends these units; their orders."""
        path = f"/api/v1/incidents/{incident_id}/orders"
        status, orders = self.call("POST", path, {"unit_ids": list(unit_ids)})
        assert status == 201, orders
        return orders

    def health(self) -> dict[str, Any]:
        """What /healthz says; {} while it does not answer."""
        with contextlib.suppress(requests.RequestException, ValueError):
            return self.request("GET", "/healthz", timeout=2).json()
        return {}

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus samples, `name{labels}` -> value."""
        samples: dict[str, float] = {}
        for line in self.request("GET", "/metrics", timeout=5).text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """One sample (0 while the server has none), its labels matched in name order."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return self.metrics().get(f"{name}{{{want}}}" if labels else name, 0.0)

    def console(self, token: str | None = None) -> Console:
        return Console(self.url, self.token if token is None else token)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
