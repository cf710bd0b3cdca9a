"""Log lines that a flood of bad input cannot multiply: a few per kind a minute, then a count.

A unit (or an attacker) sending thousands of bad messages would otherwise write a line for
each; the metrics still count every one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

WINDOW_S = 60.0
PER_WINDOW = 10


class LimitedLog:
    """`warning`/`exception` as a logger's, with a key per kind of line: at most
    `per_window` lines of one key per `window_s`; the lines left out are counted and said
    when the key next logs after its window."""

    def __init__(
        self,
        logger: logging.Logger,
        per_window: int = PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.per_window = per_window
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, list[float | int]] = {}  # key -> [start, logged, left out]

    def _allowed(self, key: str) -> tuple[bool, int]:
        """Whether this line goes out, and how many were left out before it."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self.window_s:
                left_out = int(window[2]) if window else 0
                self._windows[key] = [now, 1, 0]
                return True, left_out
            if window[1] < self.per_window:
                window[1] += 1
                return True, 0
            window[2] += 1
            return False, 0

    def _log(self, level: int, key: str, msg: str, args: tuple, exc_info: bool) -> None:
        allowed, left_out = self._allowed(key)
        if left_out:
            self.logger.log(level, "%d more %r lines were left out", left_out, key)
        if allowed:
            self.logger.log(level, msg, *args, exc_info=exc_info)

    def warning(self, key: str, msg: str, *args: Any) -> None:
        self._log(logging.WARNING, key, msg, args, False)

    def exception(self, key: str, msg: str, *args: Any) -> None:
        self._log(logging.ERROR, key, msg, args, True)
