"""A local MQTT broker for the demo and the tests: mosquitto where installed, else amqtt.

The config written here is the project's development broker config: anonymous on
loopback, persistence on, and no per-client queue limit, because mosquitto's default
`max_queued_messages 1000` silently drops QoS 1 messages to a subscriber that falls
behind (the server's ingest is such a subscriber during a burst).

The embedded broker (amqtt, in a thread with its own asyncio loop) is the fallback for
machines without mosquitto. It speaks MQTT 3.1.1 only and keeps sessions in memory.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger(__name__)

BROKER_CHOICES = ("auto", "mosquitto", "embedded")

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
# run as whoever started it: started as root, mosquitto would switch to its own user,
# which cannot write the persistence file here, and sessions would not survive a restart
user {user}
allow_anonymous true
persistence true
persistence_location {data_dir}/
autosave_interval 30
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
max_packet_size 4194304
log_dest stderr
log_type error
log_type warning
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def end_process(
    proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0, name: str = ""
) -> int:
    """Ask a child process to stop with `sig`; kill it if it has not within `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %ss; killing it", name or proc.args, timeout)
            proc.kill()
    return proc.wait()


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


class MosquittoProcess:
    """A mosquitto on a loopback port, its persistence under `data_dir`.

    `stop()` then `start()` again keeps the port and the persisted sessions, which is
    how tests restart the broker in the middle of a run.
    """

    def __init__(self, data_dir: Path, port: int | None = None, binary: str | None = None):
        found = binary or find_mosquitto()
        if not found:
            raise FileNotFoundError("mosquitto is not installed: run scripts/setup.sh")
        self.binary = found
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.protocol = "5"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The mosquitto.conf to run with (a subclass may run another)."""
        return MOSQUITTO_CONF.format(port=self.port, data_dir=self.data_dir, user=getpass.getuser())

    def ports(self) -> list[int]:
        """The ports to wait for before the broker counts as started."""
        return [self.port]

    def start(self) -> MosquittoProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "mosquitto.log", "ab"),  # noqa: SIM115
            # its own session: a Ctrl-C in the terminal must not stop the broker before
            # its clients; the owner stops it, last
            start_new_session=True,
        )
        for port in self.ports():
            wait_for_port(port)
        log.info("mosquitto listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, name="mosquitto")
        self.proc = None

    def kill(self) -> None:
        """As a crash: no chance to save what it holds since its last autosave."""
        if self.proc is not None:
            end_process(self.proc, signal.SIGKILL, name="mosquitto")
        self.proc = None


class TrustLoopback(BaseAuthPlugin):
    """amqtt auth for a loopback-only broker: everyone in, but not as "anonymous".

    amqtt drops an anonymous client's session on disconnect and queues nothing for it,
    which would break the server's persistent ingest session.
    """

    async def authenticate(self, *, session: Session) -> bool:
        return True


class EmbeddedBroker:
    """amqtt 0.12 on a loopback port, in a thread with its own event loop.

    MQTT 3.1.1 only (amqtt refuses v5), sessions and retained messages in memory.
    """

    protocol = "3.1.1"

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {f"{__name__}.TrustLoopback": {}},
        }

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        self._started.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"embedded broker did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"embedded broker failed on port {self.port}: {self._error}")
        log.info("embedded amqtt broker listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("embedded broker did not stop within %ss", timeout)
        self._thread = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        broker = Broker(self.config())
        try:
            await broker.start()
        except Exception as exc:  # amqtt wraps bind and plugin errors in BrokerError
            self._error = exc
            return
        finally:
            self._started.set()
        await self._stop.wait()
        await broker.shutdown()


class LocalBroker(Protocol):
    port: int
    protocol: str

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def local_broker(data_dir: Path, prefer: str = "auto") -> LocalBroker:
    """A started loopback broker: mosquitto if installed (unless `prefer="embedded"`), else amqtt.

    Its `protocol` says which MQTT version its clients should use.
    """
    if prefer not in BROKER_CHOICES:
        raise ValueError(f"broker {prefer!r}: use one of {', '.join(BROKER_CHOICES)}")
    if prefer != "embedded":
        binary = find_mosquitto()
        if binary:
            return MosquittoProcess(data_dir, binary=binary).start()
        if prefer == "mosquitto":
            raise FileNotFoundError("mosquitto is not installed: run scripts/setup.sh")
        log.info("mosquitto is not installed; starting the embedded amqtt broker")
    return EmbeddedBroker().start()
