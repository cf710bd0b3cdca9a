"""Supervised background loops: a loop that raises is counted, logged and run again, and
each loop says when it last made progress, so /healthz can tell a stage that stopped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from server import metrics

log = logging.getLogger(__name__)

RESTART_WAIT_S = 1.0


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
