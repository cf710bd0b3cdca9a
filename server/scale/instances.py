"""Several server instances on one Redis: who runs the timers, who is alive, orders to terminals.

With `FIELDLINK_REDIS_URL` set, instances share the store (PostgreSQL) and Redis:
- Socket.IO's message queue (Flask-SocketIO `message_queue`) carries every emit to the screens
  connected to any instance.
- Leases: a Redis key that lives while its holder renews it. `timers` names the one instance
  that runs the timers; `instance:<id>` says that instance is alive. A holder that dies stops
  renewing, and after `FIELDLINK_REDIS_LEASE_S` another instance takes over.
- Orders to terminals go to every instance, and each emits to the terminals connected to it:
  a terminal's delivery callback then runs where the terminal is, and nothing waits on the
  instance that sent the order (which may be gone by then).
- Live unit state (`SharedUnits`): every instance keeps the whole picture (positions, status,
  online) in its own memory, where recommendations read it; a change is published by the
  instance that made it and applied by the others. Redis also keeps every unit's newest fix,
  so an instance that (re)starts listening catches up from there and from the store.

Decisions are the pure functions here (`orphans`); Redis is touched only by the classes.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis

log = logging.getLogger(__name__)

PREFIX = "fieldlink:"
TIMERS = "timers"
TERMINAL_ORDERS = PREFIX + "terminal-orders"
MEMBERS = PREFIX + "instances"
UNITS = PREFIX + "units"  # channel: changes of live unit state
FIXES = PREFIX + "fixes"  # hash: unit id -> its newest fix (JSON)


def alive_lease(member: str) -> str:
    """The lease an instance holds while it is alive."""
    return f"instance:{member}"


PUBLISH_BATCH = 500

# Take the key if free, renew it if ours; one round trip, so two instances never both hold it.
HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
# Keep a unit's fix only if newer than the one kept: a late fix never moves the unit.
NEWER_FIX = """
local kept = redis.call('HGET', KEYS[1], ARGV[1])
if kept and cjson.decode(kept)['ts'] >= tonumber(ARGV[3]) then
    return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
# Give the key up only if ours: a lease lapsed and taken by another stays with that one.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def orphans(members: Iterable[str], alive: Iterable[str], me: str) -> list[str]:
    """Instances that joined and have not renewed their lease: their broker sessions still
    receive a share of the units' messages, which wait there until someone drains them."""
    return sorted(set(members) - set(alive) - {me})


def connect(url: str) -> redis.Redis:
    # short timeouts: a Redis that hangs must cost a tick, never the worker
    return redis.Redis.from_url(
        url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True
    )


class Lease:
    """A key in Redis held by `holder` for `ttl_s` at a time; `hold()` takes or renews it."""

    def __init__(self, client: redis.Redis, name: str, holder: str, ttl_s: float):
        self.key = PREFIX + name
        self.holder = holder
        self.ttl_ms = int(ttl_s * 1000)
        self._hold = client.register_script(HOLD)
        self._release = client.register_script(RELEASE)
        self.held = False
        self.valid_until = 0.0  # monotonic; the lease is surely ours until then

    def hold(self) -> bool:
        asked_at = time.monotonic()  # the key's time starts no earlier than this
        try:
            held = bool(self._hold(keys=[self.key], args=[self.holder, self.ttl_ms]))
        except redis.RedisError as exc:
            # unsure whether we still hold it: act as if not, so nothing runs twice
            log.warning("lease %s: Redis did not answer (%s)", self.key, exc)
            held = False
        if held != self.held:
            log.info("lease %s %s by %s", self.key, "taken" if held else "lost", self.holder)
        self.held = held
        self.valid_until = asked_at + self.ttl_ms / 1000 if held else 0.0
        return held

    def valid(self) -> bool:
        """Held and not lapsed since: work done under the lease checks this right before."""
        return self.held and time.monotonic() < self.valid_until

    def release(self) -> None:
        try:
            self._release(keys=[self.key], args=[self.holder])
        except redis.RedisError as exc:
            log.warning("lease %s: not released (%s); it lapses by itself", self.key, exc)
        self.held = False
        self.valid_until = 0.0


class Membership:
    """This instance's place among the instances: joined, alive while renewed, and the
    members that stopped renewing (whose broker sessions must be drained by someone)."""

    def __init__(self, client: redis.Redis, me: str, ttl_s: float):
        self.client = client
        self.me = me
        self.ttl_s = ttl_s
        self.alive = Lease(client, alive_lease(me), me, ttl_s)

    def renew(self) -> bool:
        """Joined and alive for another `ttl_s`."""
        try:
            self.client.sadd(MEMBERS, self.me)
        except redis.RedisError as exc:
            log.warning("instances: Redis did not answer (%s)", exc)
            return False
        return self.alive.hold()

    def orphans(self) -> list[str]:
        try:
            members = cast(set[str], self.client.smembers(MEMBERS))  # decode_responses
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                pipe.exists(PREFIX + alive_lease(member))
            alive = [m for m, there in zip(members, pipe.execute(), strict=True) if there]
        except redis.RedisError as exc:
            log.warning("instances: Redis did not answer (%s)", exc)
            return []
        return orphans(members, alive, self.me)

    def is_alive(self, member: str) -> bool:
        return bool(self.client.exists(PREFIX + alive_lease(member)))

    def claim(self, member: str, ttl_s: float) -> Lease | None:
        """The right to drain `member`'s sessions, for one instance at a time."""
        lease = Lease(self.client, f"drain:{member}", self.me, ttl_s)
        return lease if lease.hold() else None

    def drained(self, member: str) -> None:
        """A member's sessions are drained and ended: it is no longer one of us."""
        self.client.srem(MEMBERS, member)

    def stop(self) -> None:
        """A clean stop still leaves the broker sessions, which go on getting their share: the
        lease goes at once, so another instance drains them without waiting for it to lapse
        (with no other instance, they wait for this one's restart, as a single server's do)."""
        self.alive.release()


class Outbox:
    """What the worker publishes to the other instances, sent by a task of its own in batches
    and in order: a slow Redis never holds up the worker, and while Redis is away the
    messages wait and go later."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._newer_fix = client.register_script(NEWER_FIX)
        self.running = True  # until stopped, also if stopped before its task starts

    def put(self, channel: str, message: dict[str, Any], fix_of: str | None = None) -> None:
        """Publish `message` on `channel`; with `fix_of`, also keep its fix as that unit's."""
        self.queue.put((channel, message, fix_of))

    def run(self, sleep: Callable[[float], None]) -> None:
        batch: list[tuple[str, dict[str, Any], str | None]] = []
        while self.running or batch:
            if not batch:
                batch = self._take(sleep)
                continue
            try:
                self._publish(batch)
                batch = []
            except redis.RedisError as exc:
                if not self.running:
                    return  # stopping: the store has it all, the others catch up from there
                log.warning("not yet published to the other instances (%s); retrying", exc)
                sleep(1.0)

    def _take(self, sleep: Callable[[float], None]) -> list[tuple[str, dict[str, Any], str | None]]:
        batch: list[tuple[str, dict[str, Any], str | None]] = []
        while len(batch) < PUBLISH_BATCH:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if not batch:
            sleep(0.05)
        return batch

    def _publish(self, batch: list[tuple[str, dict[str, Any], str | None]]) -> None:
        """Unit changes go out as one message per batch (every instance reads every one of
        them, so the cost per message counts once per instance), and only the batch's newest
        fix of a unit is kept; other messages one by one, in order."""
        pipe = self.client.pipeline(transaction=False)
        newest: dict[str, dict[str, Any]] = {}
        units: list[dict[str, Any]] = []
        for channel, message, fix_of in batch:
            if fix_of is not None:
                fix = message["change"]["fix"]
                if fix_of not in newest or fix["ts"] > newest[fix_of]["ts"]:
                    newest[fix_of] = fix
            if channel == UNITS:
                units.append(message)
            else:
                pipe.publish(channel, json.dumps(message))
        for unit_id, fix in newest.items():
            self._newer_fix(keys=[FIXES], args=[unit_id, json.dumps(fix), fix["ts"]], client=pipe)
        if units:
            changes = [[m["unit_id"], m["change"], m["at"]] for m in units]
            pipe.publish(UNITS, json.dumps({"from": units[0]["from"], "changes": changes}))
        pipe.execute()

    def stop(self) -> None:
        self.running = False


class TerminalOrders:
    """Orders to terminals, published to every instance; each emits to its own terminals."""

    def __init__(
        self,
        client: redis.Redis,
        outbox: Outbox,
        deliver: Callable[[str, dict[str, Any]], None],
    ):
        self.outbox = outbox
        self.deliver = deliver
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.running = True  # until stopped, also if stopped before its task starts

    def publish(self, unit_id: str, order: dict[str, Any]) -> None:
        self.outbox.put(TERMINAL_ORDERS, {"unit_id": unit_id, "order": order})

    def run(self, sleep: Callable[[float], None]) -> None:
        """Listen until stopped; a lost Redis connection is retried (a terminal's `sync` on
        reconnect brings it whatever it missed meanwhile)."""
        while self.running:
            try:
                self.pubsub.subscribe(TERMINAL_ORDERS)
                while self.running:
                    message = self.pubsub.get_message(timeout=0.5)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except redis.RedisError as exc:
                log.warning("terminal orders: Redis connection lost (%s); retrying", exc)
                sleep(1.0)
        self.pubsub.close()

    def _deliver(self, data: str) -> None:
        try:
            message = json.loads(data)
            self.deliver(message["unit_id"], message["order"])
        except Exception:
            log.exception("an order for terminals could not be delivered")

    def stop(self) -> None:
        self.running = False


class SharedUnits:
    """Changes of live unit state between instances.

    `share` is called in the worker and only enqueues (`Outbox`). The listener hands other
    instances' changes to `apply`, and after every (re)subscription hands the kept fixes to
    `catch_up`, for whatever it missed.
    """

    def __init__(self, client: redis.Redis, outbox: Outbox, me: str, clock: Callable[[], float]):
        self.client = client
        self.outbox = outbox
        self.me = me
        self.clock = clock
        # our own batches come back on the channel too: known by their start, never parsed
        self.own = json.dumps({"from": me})[:-1] + ", "
        self.running = True  # until stopped, also if stopped before its task starts

    def share(self, unit_id: str, change: dict[str, Any]) -> None:
        message = {"from": self.me, "unit_id": unit_id, "change": change, "at": self.clock()}
        self.outbox.put(UNITS, message, fix_of=unit_id if "fix" in change else None)

    def run_listener(
        self,
        sleep: Callable[[float], None],
        apply: Callable[[list[tuple[str, dict[str, Any], float]]], None],
        catch_up: Callable[[dict[str, dict[str, Any]]], None],
    ) -> None:
        while self.running:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(UNITS)
                while self.running:
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        fixes = cast(dict[str, str], self.client.hgetall(FIXES))  # decoded
                        catch_up({u: json.loads(f) for u, f in fixes.items()})
                    elif message["type"] == "message":
                        self._apply(message["data"], apply)
            except redis.RedisError as exc:
                log.warning("unit changes: Redis connection lost (%s); retrying", exc)
                sleep(1.0)
            finally:
                pubsub.close()

    def _apply(
        self, data: str, apply: Callable[[list[tuple[str, dict[str, Any], float]]], None]
    ) -> None:
        if data.startswith(self.own):
            return
        try:
            message = json.loads(data)
            apply([(unit_id, change, at) for unit_id, change, at in message["changes"]])
        except Exception:
            log.exception("unit changes from another instance could not be applied")

    def stop(self) -> None:
        self.running = False
