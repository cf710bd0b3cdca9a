"""Writes positions in batches off the ingest worker, then acknowledges them to the broker.

A fix is acknowledged only once it is in the store, so a crash loses nothing: the broker
redelivers what was not acknowledged, and the unique (unit, ts) index ignores repeats.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from peewee import DataError, IntegrityError

from server.runtime import metrics
from server.runtime.supervise import Stage
from server.store import db, insert_positions

log = logging.getLogger(__name__)

Ack = Callable[[], None]


class StoreWriter:
    def __init__(self, batch: int, flush_s: float, sleep: Callable[[float], None] = time.sleep):
        self.batch = batch
        self.flush_s = flush_s
        self.sleep = sleep
        self.pending: queue.SimpleQueue = queue.SimpleQueue()
        self.running = False
        self.stage = Stage("store_writer")  # no beat while the store is away

    def put(self, rows: list[dict], ack: Ack | None) -> None:
        self.pending.put((rows, ack))

    def run(self) -> None:
        """Background task: collect for up to `flush_s` or `batch` rows, write, acknowledge."""
        self.running = True
        while self.running or not self.pending.empty():
            self.stage.beat()
            rows, acks = self._collect()
            if rows or acks:
                self._write(rows, acks)

    def stop(self) -> None:
        self.running = False

    def _collect(self) -> tuple[list[dict], list[Ack]]:
        rows: list[dict] = []
        acks: list[Ack] = []
        deadline = time.monotonic() + self.flush_s
        while len(rows) < self.batch:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                more, ack = self.pending.get(timeout=timeout)
            except queue.Empty:
                break
            rows.extend(more)
            if ack is not None:
                acks.append(ack)
        return rows, acks

    def _write(self, rows: list[dict], acks: list[Ack]) -> None:
        while True:
            try:
                with db.connection_context():
                    insert_positions(rows)
                metrics.POSITIONS_STORED.inc(len(rows))
                break
            except (IntegrityError, DataError):
                # rows the store can never take: retrying would block every fix behind them
                metrics.STEP_FAILURES.labels("store").inc()
                log.exception("dropped %d positions the store refuses", len(rows))
                break
            except Exception:
                # the store is away (disk full, database restarting): keep the batch, unacked
                log.exception("writing %d positions failed; retrying in 1 s", len(rows))
                self.sleep(1.0)
        for ack in acks:
            ack()
