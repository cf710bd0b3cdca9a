"""Session-wide real components: a mosquitto on a free loopback port, with the project's config."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from harness.server import ServerProcess
from harness.services import GpsFake, RedisServer, running
from harness.stores import drop_test_databases, new_postgres_database, postgres_server_url
from server.sim.local_broker import MosquittoProcess
from tests.locked_broker import LockedBroker, fieldlink, make_certificates

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
# real receivers' logs from gpsd's test suite (BSD-2, see the README beside them)
NMEA_DIR = DATA / "nmea"
# every test server pushes unit positions to consoles this often, so tests wait less
SERVER_SETTINGS = {"console_push_s": 0.2}


@pytest.fixture(scope="session", autouse=True)
def test_databases() -> Iterator[None]:
    """With FIELDLINK_TEST_DB_URL, the PostgreSQL databases the tests made go at the end."""
    yield
    drop_test_databases()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> MosquittoProcess:
    """One broker for the session; tests that restart a broker start their own."""
    with running(MosquittoProcess(tmp_path_factory.mktemp("mosquitto"))) as broker:
        yield broker


@pytest.fixture
def own_mosquitto(tmp_path) -> MosquittoProcess:
    """A broker for one test, free to be stopped and restarted on the same port."""
    with running(MosquittoProcess(tmp_path / "mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def nmea_dir() -> Path:
    return NMEA_DIR


@pytest.fixture(params=["threading", "gevent"])
def async_mode(request) -> str:
    return request.param


@pytest.fixture
def server_factory(tmp_path, mosquitto):
    """Starts `fieldlink server` processes on the session broker; stops them after the test."""

    started: list[ServerProcess] = []

    def make(
        async_mode: str = "threading", broker: MosquittoProcess | None = None, **settings: Any
    ):
        server = ServerProcess(
            tmp_path, (broker or mosquitto).url, async_mode, **{**SERVER_SETTINGS, **settings}
        )
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def gpsfake() -> Iterator[Callable[..., GpsFake]]:
    """Factory of started GpsFake instances; every one is stopped after the test."""
    with contextlib.ExitStack() as started:

        def start(log: Path, port: int | None = None) -> GpsFake:
            return started.enter_context(running(GpsFake(log, port)))

        yield start


@pytest.fixture
def mock_gpio() -> Iterator[MockFactory]:
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = None


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A Redis per test: Socket.IO's channel and the leases are the same names in every
    deployment, so tests sharing one Redis would hear each other's instances."""
    with running(RedisServer(tmp_path / "redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The local PostgreSQL the suite runs on (scripts/postgres.sh makes sure of it)."""
    return postgres_server_url()


@pytest.fixture
def cluster(tmp_path, mosquitto, redis_server, postgres_url):
    """`make(n, **settings)`: n instances on one new PostgreSQL database and the test's Redis,
    not yet started (units are provisioned first, as each instance loads them at start)."""
    db_url = f"{postgres_url}/{new_postgres_database(postgres_url)}"
    started: list[ServerProcess] = []

    # a group of the test's own: members left in the session's broker by other tests'
    # instances would otherwise get a share of this test's messages
    group = f"test-{uuid.uuid4().hex[:8]}"

    def make(count: int, **settings) -> list[ServerProcess]:
        settings.setdefault("mqtt_share_group", group)
        for _ in range(count):
            workdir: Path = tmp_path / f"instance-{len(started)}"
            workdir.mkdir()
            started.append(
                ServerProcess(
                    workdir,
                    mosquitto.url,
                    db_url=db_url,
                    redis_url=redis_server.url,
                    **{**SERVER_SETTINGS, **settings},
                )
            )
        return started[-count:]

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def locked_server(tmp_path) -> Iterator[tuple[ServerProcess, LockedBroker]]:
    """A server on the production broker config, whose unit and account commands rewrite
    the broker's files and reload it (FIELDLINK_BROKER_*), as a deployment sets them."""
    broker = LockedBroker(tmp_path / "broker", make_certificates(tmp_path / "certs"))
    server_url = f"mqtt://fieldlink-server:{secrets.token_urlsafe(16)}@127.0.0.1:{broker.port}"
    server = ServerProcess(
        tmp_path / "server",
        server_url,
        broker_password_file=broker.password_file,
        broker_acl_file=broker.acl_file,
    )
    done = fieldlink("broker", "acl", "--output", str(broker.acl_file), env=server.env)
    assert done.returncode == 0, done.stderr
    done = server.command("broker", "passwords", "--output", str(broker.password_file))
    assert done.returncode == 0, done.stderr
    broker.start()
    assert broker.proc is not None
    server.env["FIELDLINK_BROKER_RELOAD"] = f"kill -HUP {broker.proc.pid}"
    server.start()
    yield server, broker
    server.stop()
    broker.stop()
