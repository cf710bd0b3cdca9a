"""Changes for the consoles: at once after a quiet spell, together when close."""

from __future__ import annotations

import time
from typing import Any

from server.notify import CONSOLE_COALESCE_S, CONSOLE_NS, Notifier
from wire import Topics


class Emits:
    """Stands in for Flask-SocketIO's emit: what went to which namespace, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def emit(self, event: str, data: Any, namespace: str) -> None:
        assert namespace == CONSOLE_NS
        self.sent.append((event, data))


def test_changes_close_together_go_as_one_event_in_their_order() -> None:
    emits = Emits()
    notifier = Notifier(emits, Topics("fieldlink"), lambda *_: None, lambda *_: None)
    notifier.console("incident", {"id": "i1", "state": "new"})
    assert emits.sent == [("incident", {"id": "i1", "state": "new"})]  # quiet before: at once
    notifier.console("order", {"order_id": "o1", "state": "sent"})
    notifier.console("incident", {"id": "i1", "state": "dispatched"})
    assert len(emits.sent) == 1  # held, to go together
    notifier.flush_consoles()
    notifier.flush_consoles()  # nothing more waiting: nothing sent
    assert emits.sent[1:] == [
        (
            "changes",
            [
                ["order", {"order_id": "o1", "state": "sent"}],
                ["incident", {"id": "i1", "state": "dispatched"}],
            ],
        )
    ]
    time.sleep(CONSOLE_COALESCE_S)
    notifier.console("alarm", {"unit_id": "post-9"})
    assert emits.sent[-1] == ("alarm", {"unit_id": "post-9"})  # quiet again: at once
