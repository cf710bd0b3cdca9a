"""The server's running parts: background loops that are supervised (a loop that raises is
counted, logged and run again) and beat a `Stage`, so /healthz can tell one that stopped
making progress. The runtime starts its parts in order and stops them in reverse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from server.runtime import metrics

log = logging.getLogger(__name__)

RESTART_WAIT_S = 1.0
STOP_POLL_S = 0.1  # how soon a periodic loop notices a stop within its interval


class Stage:
    """A loop's heartbeat: `beat()` at every turn; stalled when none came for `stall_s`."""

    def __init__(self, name: str, stall_s: float = 30.0):
        self.name = name
        self.stall_s = stall_s
        self.last_beat = time.monotonic()

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def silent_s(self) -> float:
        return time.monotonic() - self.last_beat

    def stalled(self) -> bool:
        return self.silent_s() > self.stall_s


def supervised(
    stage: Stage,
    loop: Callable[..., Any],
    running: Callable[[], bool],
    sleep: Callable[[float], None],
    *args: Any,
) -> Callable[[], None]:
    """`loop(*args)` run until `running()` is false; if it raises, it starts again."""

    def run() -> None:
        while True:
            try:
                loop(*args)
            except Exception:
                metrics.STAGE_RESTARTS.labels(stage.name).inc()
                log.exception("%s stopped on an error; starting it again", stage.name)
            if not running():
                return
            sleep(RESTART_WAIT_S)
            stage.beat()

    return run


@dataclass(frozen=True)
class Tasks:
    """How the server's async mode runs a background task and sleeps in one (threads under
    `threading`, greenlets under `gevent`: Flask-SocketIO's own)."""

    spawn: Callable[..., Any]
    sleep: Callable[[float], None]


class Part(Protocol):
    """A part of the running server: started in order, stopped in reverse."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Runner:
    """A loop that runs until told to halt (the worker, the store writer, a listener): in a
    supervised task; `stop()` halts it and waits for the task."""

    def __init__(
        self,
        tasks: Tasks,
        stage: Stage,
        run: Callable[[], None],
        halt: Callable[[], None],
        done: Callable[[], None] = lambda: None,
    ):
        self.tasks, self.stage, self.run, self.halt, self.done = tasks, stage, run, halt, done
        self.running = False
        self.task: Any = None

    def start(self) -> None:
        self.running = True
        loop = supervised(self.stage, self.run, lambda: self.running, self.tasks.sleep)
        self.task = self.tasks.spawn(loop)

    def stop(self) -> None:
        self.running = False
        self.halt()
        self.task.join()
        self.done()


class Every:
    """`body` every `seconds` in a supervised task, beating its stage at each turn; one
    turn's error is counted and logged, and the next turn comes as usual. `last` runs once
    after the loop has stopped (what it held back goes out)."""

    def __init__(
        self,
        tasks: Tasks,
        stage: Stage,
        seconds: float,
        body: Callable[[], Any],
        last: Callable[[], Any] | None = None,
    ):
        self.tasks, self.stage, self.seconds, self.body, self.last = (
            tasks,
            stage,
            seconds,
            body,
            last,
        )
        self.running = False
        self.task: Any = None

    def start(self) -> None:
        self.running = True
        loop = supervised(self.stage, self._turns, lambda: self.running, self.tasks.sleep)
        self.task = self.tasks.spawn(loop)

    def _turns(self) -> None:
        while self.running:
            due = time.monotonic() + self.seconds
            while self.running and time.monotonic() < due:
                self.tasks.sleep(min(STOP_POLL_S, self.seconds))
            self.stage.beat()
            if not self.running:
                break
            try:
                self.body()
            except TimeoutError:
                log.warning("%s: the worker is busy; again next turn", self.stage.name)
            except Exception:
                metrics.STEP_FAILURES.labels(self.stage.name).inc()
                log.exception("%s failed", self.stage.name)

    def stop(self) -> None:
        self.running = False
        self.task.join()
        if self.last is not None:
            self.last()
