"""Several server instances on one PostgreSQL and one Redis, each a real `fieldlink server`.

A terminal connected to one instance gets an order dispatched on another and confirms its
delivery; the escalation timer runs on one instance at a time and goes on when that one is
killed.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.harness import (
    POSTGRES_URL,
    ServerProcess,
    Terminal,
    eventually,
    new_postgres_database,
)
from tests.redis_process import RedisProcess

SCENE = {"lat": 31.23, "lon": 121.47, "address": "100 Nanjing Rd E"}


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisProcess]:
    """A Redis per test: Socket.IO's channel and the leases are the same names in every
    deployment, so tests sharing one Redis would hear each other's instances."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The local PostgreSQL the suite runs on (scripts/postgres.sh makes sure of it)."""
    if POSTGRES_URL:
        return POSTGRES_URL
    script = ROOT / "scripts" / "postgres.sh"
    return subprocess.run([script], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def cluster(tmp_path, mosquitto, redis_server, postgres_url):
    """`make(n, **settings)`: n instances on one new PostgreSQL database and the test's Redis,
    not yet started (units are provisioned first, as each instance loads them at start)."""
    db_url = f"{postgres_url}/{new_postgres_database(postgres_url)}"
    started: list[ServerProcess] = []

    def make(count: int, **settings) -> list[ServerProcess]:
        for _ in range(count):
            workdir: Path = tmp_path / f"instance-{len(started)}"
            workdir.mkdir()
            started.append(
                ServerProcess(
                    workdir, mosquitto.url, db_url=db_url, redis_url=redis_server.url, **settings
                )
            )
        return started[-count:]

    yield make
    for server in started:
        server.stop()


def start_all(servers: list[ServerProcess]) -> None:
    for server in servers:
        server.start()


def incident_with_order(server: ServerProcess, unit_id: str, priority: int = 2) -> dict:
    status, incident = server.call(
        "POST",
        "/api/v1/incidents",
        {"category": "dispute", "priority": priority, "location": SCENE, "by": "alice"},
    )
    assert status == 201, incident
    status, orders = server.call(
        "POST", f"/api/v1/incidents/{incident['id']}/orders", {"unit_ids": [unit_id]}
    )
    assert status in (200, 201), orders
    return incident


def order_of(server: ServerProcess, incident_id: str) -> Callable[[], dict]:
    return lambda: server.get(f"/api/v1/incidents/{incident_id}")["orders"][0]


def test_a_terminal_on_one_instance_gets_an_order_dispatched_on_another(cluster) -> None:
    a, b = cluster(2)
    token = a.add_unit("car-1")
    start_all([a, b])
    terminal = Terminal(a.url, token)
    try:
        incident = incident_with_order(b, "car-1")
        terminal.received.wait(10)
        assert [o["incident_id"] for o in terminal.orders] == [incident["id"]]
        # the terminal's delivery callback ran on A, where it is connected; B sees it stored
        delivered = eventually(
            lambda: order_of(b, incident["id"])()["delivered_at"], what="delivery on B"
        )
        assert delivered >= terminal.orders[0]["ts"]
        assert order_of(b, incident["id"])()["state"] == "delivered"
    finally:
        terminal.close()


def test_the_timers_run_on_one_instance_and_go_on_when_it_is_killed(cluster) -> None:
    a, b = cluster(
        2,
        ack_timeouts_s="1=3,2=3,3=3,4=3",
        redis_lease_s=2,
        timer_tick_s=0.2,
    )
    a.add_unit("car-1")
    start_all([a, b])
    owners = eventually(
        lambda: [s for s in (a, b) if s.get("/healthz")["runs_timers"]], what="a timer owner"
    )
    assert len(owners) == 1
    owner = owners[0]
    other = b if owner is a else a
    incident = incident_with_order(other, "car-1")
    sent_at = order_of(other, incident["id"])()["sent_at"]
    owner.stop(signal.SIGKILL)
    order = eventually(
        lambda: (o := order_of(other, incident["id"])())["state"] == "timed_out" and o,
        timeout=15,
        what="the escalation on the surviving instance",
    )
    assert order["timed_out_at"] >= sent_at + 3
    assert other.get("/healthz")["runs_timers"]
    timeline = other.get(f"/api/v1/incidents/{incident['id']}/timeline")
    assert [e["kind"] for e in timeline].count("order_timed_out") == 1
