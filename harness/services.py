"""The services a server and an agent need, each on a free loopback port: a broker (the
project's own `MosquittoProcess`), Redis, and gpsd fed an NMEA log by gpsfake."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from server.sim.local_broker import end_process, free_port, wait_for_port


class Service(Protocol):
    def start(self) -> object: ...

    def stop(self) -> object: ...


S = TypeVar("S", bound=Service)


@contextlib.contextmanager
def running(service: S) -> Iterator[S]:
    """`service` started, and stopped on the way out whatever happens in between."""
    service.start()
    try:
        yield service
    finally:
        service.stop()


def end_process_group(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM to a process started with `start_new_session=True` and everything it started;
    SIGKILL when they have not ended within `timeout`."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class RedisServer:
    """A redis-server of its own on a free loopback port, nothing saved to disk."""

    def __init__(self, workdir: Path):
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(self.binary).exists():
            raise FileNotFoundError("redis-server is not installed: run scripts/setup.sh")
        self.workdir = Path(workdir)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, name="redis-server")
        self.proc = None


class GpsFake:
    """gpsfake playing an NMEA log once into its own gpsd on a loopback port, a line every
    `cycle_s` seconds."""

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
        if self.proc is not None:
            end_process_group(self.proc)
        self.proc = None


def nmea_slice(source: Path, dest: Path, start: int, stop: int) -> Path:
    """Lines [start, stop) of an NMEA log, so a replay takes seconds, not minutes."""
    dest.write_text("".join(source.read_text().splitlines(keepends=True)[start:stop]))
    return dest
