"""The worker: a command nobody waits for still has its failure logged and counted."""

from __future__ import annotations

import logging
import threading

from prometheus_client import REGISTRY

from server.ingest import Inbox
from server.orders import OrderRefused
from server.pipeline import Call, Pipeline
from server.store import open_database
from tests.harness import eventually
from wire import Topics


def failures(step: str) -> float:
    return REGISTRY.get_sample_value("fieldlink_step_failures_total", {"step": step}) or 0.0


def test_a_call_nobody_waits_for_has_its_failure_logged_and_counted(tmp_path, caplog) -> None:
    open_database(f"sqlite:///{tmp_path / 'fieldlink.db'}")
    inbox = Inbox()
    pipeline = Pipeline(Topics("fieldlink"), inbox, None, None, None, None)

    def late_delivery() -> None:  # as a terminal confirming an order since cancelled
        raise OrderRefused("order o-1 is already cancelled")

    def broken_apply() -> None:
        raise KeyError("fix")

    before = failures("late_delivery"), failures("broken_apply")
    worker = threading.Thread(target=pipeline.run)
    with caplog.at_level(logging.WARNING, logger="server.pipeline"):
        worker.start()
        inbox.put(Call(late_delivery), urgent=True)
        inbox.put(Call(broken_apply))
        waited = Call(late_delivery, awaited=True)  # its caller gets the error instead
        inbox.put(waited, urgent=True)
        eventually(lambda: waited.done.is_set() and failures("broken_apply") > before[1])
        pipeline.stop()
        worker.join(timeout=5)
    assert (failures("late_delivery"), failures("broken_apply")) == (before[0] + 1, before[1] + 1)
    assert isinstance(waited.error, OrderRefused)
    assert "late_delivery failed: order o-1 is already cancelled" in caplog.text
    assert "broken_apply failed" in caplog.text and "Traceback" in caplog.text
