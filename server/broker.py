"""A local MQTT broker for the demo and the tests: mosquitto where installed.

The config written here is the project's development broker config: anonymous on
loopback, persistence on, and no per-client queue limit, because mosquitto's default
`max_queued_messages 1000` silently drops QoS 1 messages to a subscriber that falls
behind (the server's ingest is such a subscriber during a burst).
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data_dir}/
autosave_interval 30
max_queued_messages 0
max_inflight_messages 0
max_packet_size 1048576
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
        self.binary = binary or find_mosquitto()
        if not self.binary:
            raise FileNotFoundError("mosquitto is not installed: run scripts/setup.sh")
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> MosquittoProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(MOSQUITTO_CONF.format(port=self.port, data_dir=self.data_dir))
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "mosquitto.log", "ab"),  # noqa: SIM115
        )
        wait_for_port(self.port)
        log.info("mosquitto listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
