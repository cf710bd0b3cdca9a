"""What goes to the consoles on a clock rather than at once: units that moved, batched every
`FIELDLINK_CONSOLE_PUSH_S` (not per fix), and consoles whose login has ended let go."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.notify.notifier import Notifier
from server.state.live_state import LiveState


class ConsolePush:
    def __init__(
        self,
        live: LiveState,
        notifier: Notifier,
        in_worker: Callable[..., Any],
        end_expired: Callable[[], None],
    ):
        self.live, self.notifier = live, notifier
        self.in_worker, self.end_expired = in_worker, end_expired

    def push(self) -> None:
        changed = self.in_worker(self.live.take_changed)  # live state is the worker's
        if changed:
            self.notifier.console("units", changed)
        self.end_expired()
