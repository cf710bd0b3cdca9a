"""The durable outbox: every message the agent sends waits here until it is safe.

The outbox is the storage; the MQTT client is only a transport. Alarms, acks and positions
leave it only when the server's receipt says they are in its store: a broker's PUBACK only
says the broker has them, and a broker that crashes loses what it had not yet saved. After
the PUBACK such a row waits, marked sent; it is sent again after a reconnect (the broker
may have restarted), and an alarm or an ack also when no receipt came in time. State and
health leave at their PUBACK: only the newest of them matters, and the next one follows.

An SD card wears by what is written to it, so a position costs one transaction: the fix goes
in, and the fixes a receipt confirmed since the last one go out, in the same commit. That a
position is with the broker and that the server confirmed it is kept in memory: after a
restart every unconfirmed row goes again anyway, and a confirmed fix not yet deleted when the
power is cut is only sent once more (the server keeps one position per fix time).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wire
from wire import CHANNELS, Channel, Topics

log = logging.getLogger(__name__)

# Drain order: lower first. Alarms and acks jump the queue; a position backlog goes last.
PRIORITY: dict[Channel, int] = {
    Channel.ALARM: 0,
    Channel.ACK: 1,
    Channel.STATE: 2,
    Channel.HEALTH: 3,
    Channel.POSITION: 5,
}
# Channels where only the newest message matters: a newer one replaces an unsent older one,
# so a week offline leaves one health and one state row, not thousands.
LATEST_ONLY = frozenset({Channel.STATE, Channel.HEALTH})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_drain ON outbox (priority, id);
-- the columns of receipts (added with them: ALTERed into an older outbox, `_RECEIPTS`)
-- orders the unit has seen and the acks it sent for each: a restarted agent must not
-- buzz again for an order the server re-sends
CREATE TABLE IF NOT EXISTS known_order (
    order_id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    acked TEXT NOT NULL DEFAULT '',
    seen INTEGER NOT NULL
);
"""


# Added to an outbox made before receipts: what the server's receipt names a row by (an
# alarm's id, an ack's order and status; a position's fix time), and since when the broker
# has it (NULL: not yet sent, or to be sent again).
_RECEIPTS = (("confirm", "TEXT"), ("fix_ts", "REAL"), ("sent_at", "REAL"))


def confirm_key(channel: Channel, message: dict[str, Any]) -> str | None:
    """What the server's receipt names a message by (positions go by their fix time)."""
    if channel is Channel.ALARM:
        return str(message["alarm_id"])
    if channel is Channel.ACK:
        return f"{message['order_id']}/{message['status']}"
    return None


@dataclass(frozen=True)
class Row:
    id: int
    priority: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    """A SQLite queue shared by the stages (producers) and the publisher (consumer).

    One connection guarded by a lock: paho's callbacks, the GPS thread and GPIO threads
    all call in, and SQLite connections must not be used from two threads at once.

    When full (`max_rows`), the oldest positions are dropped and counted in `dropped`;
    alarms, acks, state and health never are (there are few, and they matter most).
    """

    def __init__(self, path: str | Path, max_rows: int = 500_000):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self.dropped = 0
        self.on_put: Callable[[], None] | None = None  # the publisher's wake-up
        # positions with the broker, not yet confirmed: row id -> fix time (no write for them)
        self._with_broker: dict[int, float] = {}
        self._confirmed_upto: float | None = None  # every fix up to this time is stored
        self._to_purge = 0  # confirmed positions still in the file, deleted with the next put
        self._lock = threading.Lock()
        # Default isolation: `with self._db` wraps each put/delete in one committed transaction.
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        # 1 KiB pages (for a new file): a fix's commit appends 3 pages to the WAL, and each
        # byte of them wears the card; 4 KiB pages wrote 2.3x as much (bench.card_wear)
        self._db.execute("PRAGMA page_size=1024")
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the row is on disk before put() returns, so "queued" means "survives a crash".
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        for column, kind in _RECEIPTS:
            if column not in present:
                self._db.execute(f"ALTER TABLE outbox ADD COLUMN {column} {kind}")
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS outbox_confirm ON outbox (confirm) WHERE confirm NOT NULL"
        )
        # Counted once, then kept: count(*) walks the table, a week's backlog on every put.
        self._rows: int = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def remember_order(self, order_id: str, body: str, acked: str, keep: int) -> None:
        """Save an order and the acks sent for it; only the newest `keep` orders stay."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO known_order (order_id, body, acked, seen) VALUES (?, ?, ?, "
                "(SELECT coalesce(max(seen), 0) + 1 FROM known_order)) "
                "ON CONFLICT (order_id) DO UPDATE SET body = excluded.body, acked = excluded.acked",
                (order_id, body, acked),
            )
            self._db.execute(
                "DELETE FROM known_order WHERE seen <= (SELECT max(seen) FROM known_order) - ?",
                (keep,),
            )

    def known_orders(self) -> list[tuple[str, str, str]]:
        """(order_id, body, acked) of the orders remembered, oldest first."""
        with self._lock:
            return self._db.execute(
                "SELECT order_id, body, acked FROM known_order ORDER BY seen"
            ).fetchall()

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        priority: int,
        qos: int = 1,
        retain: bool = False,
        replace: bool = False,
        confirm: str | None = None,
        fix_ts: float | None = None,
    ) -> int:
        """Store a message; `replace` deletes unsent older rows on the same topic first.
        A row with a `confirm` key or a `fix_ts` stays until the server's receipt names it."""
        with self._lock, self._db:
            self._purge_confirmed()
            if replace:
                self._rows -= self._db.execute(
                    "DELETE FROM outbox WHERE topic = ?", (topic,)
                ).rowcount
            cursor = self._db.execute(
                "INSERT INTO outbox (priority, topic, payload, qos, retain, created, confirm,"
                " fix_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (priority, topic, payload, qos, int(retain), time.time(), confirm, fix_ts),
            )
            self._rows += 1
            self._evict_over_limit()
        if self.on_put:
            self.on_put()
        row_id = cursor.lastrowid
        assert row_id is not None  # set by the INSERT
        return row_id

    def _purge_confirmed(self) -> None:
        """Delete the positions receipts confirmed since the last purge (in the caller's
        transaction)."""
        if self._to_purge:
            self._rows -= self._db.execute(
                "DELETE FROM outbox WHERE priority = ? AND fix_ts <= ?",
                (PRIORITY[Channel.POSITION], self._confirmed_upto),
            ).rowcount
            self._to_purge = 0

    def _evict_over_limit(self) -> None:
        excess = self._rows - self.max_rows
        if excess <= 0:
            return
        evicted = self._db.execute(
            "DELETE FROM outbox WHERE id IN"
            " (SELECT id FROM outbox WHERE priority = ? ORDER BY id LIMIT ?)",
            (PRIORITY[Channel.POSITION], excess),
        ).rowcount
        self._rows -= evicted
        self.dropped += evicted
        if evicted:
            log.warning(
                "outbox full (%d rows): dropped the %d oldest positions (%d so far)",
                self.max_rows,
                evicted,
                self.dropped,
            )

    def peek(self, limit: int, exclude: Iterable[int] = (), positions_after: int = 0) -> list[Row]:
        """The next `limit` rows in drain order (priority, then id), skipping the ids in
        `exclude`, the position rows up to id `positions_after` (those in flight or with the
        broker: the publisher's mark) and the positions already confirmed."""
        skip = list(exclude)
        marks = ",".join("?" * len(skip))
        upto = -1.0 if self._confirmed_upto is None else self._confirmed_upto
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, priority, topic, payload, qos, retain, created FROM outbox"
                f" WHERE sent_at IS NULL AND id NOT IN ({marks})"
                f" AND (priority != ? OR (id > ? AND fix_ts > ?))"
                f" ORDER BY priority, id LIMIT ?",
                (*skip, PRIORITY[Channel.POSITION], positions_after, upto, limit),
            ).fetchall()
        return [Row(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    def delete(self, *row_ids: int) -> None:
        """The messages (one, or a batch's rows) left the unit for good."""
        with self._lock, self._db:
            for row_id in row_ids:  # one transaction, one fsync, for a whole batch
                self._rows -= self._db.execute(
                    "DELETE FROM outbox WHERE id = ?", (row_id,)
                ).rowcount

    def acknowledged(self, *row_ids: int) -> None:
        """The broker has them (PUBACK): what a receipt confirms waits for it, the rest goes.
        Positions wait in memory only: nothing is written for them here."""
        now = time.time()
        marks = ",".join("?" * len(row_ids))
        with self._lock:
            kinds = self._db.execute(
                f"SELECT id, confirm IS NOT NULL, fix_ts FROM outbox WHERE id IN ({marks})",
                row_ids,
            ).fetchall()
            upto = -1.0 if self._confirmed_upto is None else self._confirmed_upto
            for row_id, _confirm, ts in kinds:
                if ts is None:
                    continue
                if ts <= upto:  # a receipt came first: stored already, gone with the purge
                    self._to_purge += 1
                else:
                    self._with_broker[row_id] = ts
            waits = [i for i, confirm, _ts in kinds if confirm]
            leaves = [i for i, confirm, ts in kinds if not confirm and ts is None]
            if not waits and not leaves:
                return
            with self._db:  # one transaction, one fsync, for a whole batch
                for row_id in waits:
                    self._db.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (now, row_id))
                for row_id in leaves:
                    self._rows -= self._db.execute(
                        "DELETE FROM outbox WHERE id = ?", (row_id,)
                    ).rowcount

    def confirm(self, receipt: dict[str, Any]) -> int:
        """The server's receipt: what it names is in the server's store and leaves here."""
        keys = [
            *receipt.get("alarms", ()),
            *(f"{a['order_id']}/{a['status']}" for a in receipt.get("acks", ())),
        ]
        with self._lock:
            gone = self._confirm_positions(receipt.get("positions"))
            if keys:
                with self._db:
                    deleted = sum(
                        self._db.execute("DELETE FROM outbox WHERE confirm = ?", (key,)).rowcount
                        for key in keys
                    )
                self._rows -= deleted
                gone += deleted
        return gone

    def _confirm_positions(self, upto: float | None) -> int:
        """Every fix up to `upto` is stored: counted as gone now, deleted with the next put.

        Counted from the fixes the broker has (in memory), not by a query: a count over the
        file scanned a week's backlog in paho's callback at every receipt. A fix whose PUBACK
        comes after the receipt is counted then (`acknowledged`)."""
        if upto is None or (self._confirmed_upto is not None and upto <= self._confirmed_upto):
            return 0
        self._confirmed_upto = upto
        kept = {i: ts for i, ts in self._with_broker.items() if ts > upto}
        newly = len(self._with_broker) - len(kept)
        self._with_broker = kept
        self._to_purge += newly
        return newly

    def send_again(self, unconfirmed_before: float, priorities: Iterable[int] | None = None) -> int:
        """Rows the broker took before `unconfirmed_before` and no receipt named since go out
        again (of the given priorities; default all): after a reconnect, the broker may have
        lost them; an alarm or an ack with no receipt in time may have been lost."""
        wanted = tuple(priorities or PRIORITY.values())
        marks = ",".join("?" * len(wanted))
        with self._lock, self._db:
            again = 0
            if PRIORITY[Channel.POSITION] in wanted:  # the publisher's mark goes back to 0
                again, self._with_broker = len(self._with_broker), {}
            return (
                again
                + self._db.execute(
                    f"UPDATE outbox SET sent_at = NULL WHERE sent_at < ? AND priority IN ({marks})",
                    (unconfirmed_before, *wanted),
                ).rowcount
            )

    def unconfirmed(self) -> int:
        """Rows the broker has that the server has not confirmed yet."""
        with self._lock:
            count: int = self._db.execute(
                "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL"
            ).fetchone()[0]
            return count + len(self._with_broker)

    def contains(self, row_id: int) -> bool:
        with self._lock:
            found = self._db.execute("SELECT 1 FROM outbox WHERE id = ?", (row_id,)).fetchone()
        return found is not None

    def depth(self) -> int:
        """Rows still to leave the unit (confirmed positions awaiting their purge are gone)."""
        with self._lock:
            return self._rows - self._to_purge

    def close(self) -> None:
        with self._lock:
            with self._db:
                self._purge_confirmed()
            self._db.close()


class Uplink:
    """What the stages call to send a message: validates it, names its topic, queues it."""

    def __init__(self, outbox: Outbox, unit_id: str, topics: Topics):
        self.outbox = outbox
        self.unit_id = unit_id
        self.topics = topics

    def send(self, channel: Channel, message: dict[str, Any]) -> int:
        """Queue `message` for `channel`; returns the outbox row id. Raises wire.WireError."""
        rule = CHANNELS[channel]
        return self.outbox.put(
            self.topics.unit(self.unit_id, channel),
            wire.encode(channel, message),
            priority=PRIORITY[channel],
            qos=rule.qos,
            retain=rule.retain,
            replace=channel in LATEST_ONLY,
            confirm=confirm_key(channel, message),
            fix_ts=message["ts"] if channel is Channel.POSITION else None,
        )
