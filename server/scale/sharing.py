"""What an instance shares with the others on one Redis, as parts of its runtime: the
timers' lease, its liveness and the drain of instances that died, orders to every
instance's screens, live unit state both ways. `Alone` has the same shape with nothing to
share: one instance, no Redis, and none of these parts in the runtime's list.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from server.config import Settings
from server.ingest.pipeline import Call
from server.ingest.sessions import Inbox, MqttIngest
from server.orders import OrderBook, arrival_watch
from server.runtime import clock, metrics
from server.runtime.supervise import Every, Part, Runner, Stage, Tasks
from server.scale import instances
from server.state.live_state import LiveState, UnitState
from server.store import IN_FLEET, Unit, crews_on_shift

log = logging.getLogger(__name__)

DRAIN_GIVE_UP_S = 30.0  # per session; what is not handled by then is drained again later

Change = tuple[str, dict[str, Any], float]  # (unit id, what changed, when)


class AlwaysHeld:
    """The timers' lease of an instance alone: always its own."""

    held = True

    def hold(self) -> bool:
        return True

    def valid(self) -> bool:
        return True

    def release(self) -> None:
        pass


class Alone:
    """One instance: nothing shared, no parts."""

    timer_lease = AlwaysHeld()
    share: Callable[[str, dict[str, Any]], None] | None = None
    everywhere: Callable[[str, dict[str, Any]], None] | None = None

    def parts(self, *_: Any) -> tuple[list[Part], list[Part], list[Part]]:
        return [], [], []


class SharedChanges:
    """The other instances' unit changes, applied in the worker like our own."""

    def __init__(
        self,
        inbox: Inbox,
        live: LiveState,
        book: OrderBook,
        known_unit: Callable[[str], UnitState | None],
    ):
        self.inbox, self.live, self.book, self.known_unit = inbox, live, book, known_unit

    def apply(self, changes: list[Change]) -> None:
        """Another instance's batch: one worker trip for its states, ahead of positions, and
        one for its fixes."""
        states = [c for c in changes if "fix" not in c[1]]
        fixes = [c for c in changes if "fix" in c[1]]
        if states:
            self.inbox.put(Call(self._apply_in_worker, (states,)), urgent=True)
        if fixes:
            self.inbox.put(Call(self._apply_in_worker, (fixes,)))

    def _apply_in_worker(self, changes: list[Change]) -> None:
        for unit_id, change, at in changes:
            try:  # one bad change does not cost the batch's others
                self._apply_one(unit_id, change, at)
            except Exception:
                metrics.STEP_FAILURES.labels("shared_units").inc()
                log.exception("a change of %s from another instance failed", unit_id)

    def _apply_one(self, unit_id: str, change: dict[str, Any], at: float) -> None:
        unit = self.known_unit(unit_id)  # provisioned since start-up: from the store
        if unit is None:
            return
        self.live.apply_shared(unit_id, change, at)
        # the scenes a unit was sent to are watched where the order was sent: that instance
        # must see the fixes the others took in as well
        if "fix" in change and unit.targets:
            arrival_watch.on_fixes(self.book, unit, [change["fix"]])

    def catch_up(self, fixes: dict[str, dict[str, Any]]) -> None:
        """After (re)subscribing: what may have been missed, from the store and Redis."""
        self.inbox.put(Call(self._catch_up_in_worker, (fixes,)), urgent=True)

    def _catch_up_in_worker(self, fixes: dict[str, dict[str, Any]]) -> None:
        now = clock.now()
        crews = crews_on_shift()
        for row in Unit.select(
            Unit.id, Unit.status, Unit.status_since, Unit.online, Unit.out_of_service
        ).where(IN_FLEET):
            stored = {
                "status": row.status,
                "status_since": row.status_since,
                "online": bool(row.online),
                "out_of_service": bool(row.out_of_service),
                "crew": crews.get(row.id, []),
            }
            self.live.apply_shared(row.id, stored, now)
        for unit_id, fix in fixes.items():
            self.live.apply_shared(unit_id, {"fix": fix}, fix["ts"])


class Members:
    """This instance among the others: its lease renewed, the broker sessions of instances
    that died drained (`MqttIngest.drain`), one claim at a time."""

    def __init__(self, membership: instances.Membership, ingest: MqttIngest, tasks: Tasks):
        self.membership, self.ingest, self.tasks = membership, ingest, tasks
        self._draining: set[str] = set()

    def watch(self) -> None:
        self.membership.renew()
        for member in self.membership.orphans():
            if member in self._draining:
                continue
            claim = self.membership.claim(member, 3 * DRAIN_GIVE_UP_S)
            if claim is not None:
                self._draining.add(member)
                self.tasks.spawn(self._drain, member, claim)

    def _drain(self, member: str, claim: instances.Lease) -> None:
        try:
            log.warning("instance %s is gone: taking over its broker sessions", member)
            membership = self.membership
            if self.ingest.drain(
                member, lambda: not membership.is_alive(member), give_up_s=DRAIN_GIVE_UP_S
            ):
                self.membership.drained(member)
        except Exception:
            log.exception("draining %s failed; trying again", member)
        finally:
            claim.release()
            self._draining.discard(member)


class Sharing:
    """Several instances on one Redis (FIELDLINK_REDIS_URL)."""

    def __init__(self, settings: Settings, screens_here: Callable[[str, dict[str, Any]], Any]):
        self.settings = settings
        me = settings.mqtt_client_id  # unique per instance, as the broker needs
        client = instances.connect(settings.redis_url)
        self.timer_lease = instances.Lease(client, instances.TIMERS, me, settings.redis_lease_s)
        self.outbox = instances.Outbox(client)
        self.membership = instances.Membership(client, me, settings.redis_lease_s)
        self.units = instances.SharedUnits(client, self.outbox, me, clock.now)
        self.terminal_orders = instances.TerminalOrders(client, self.outbox, screens_here)
        self.share = self.units.share  # live state's own changes, to the others
        self.everywhere = self.terminal_orders.publish  # an order to every instance's screens

    def parts(
        self, tasks: Tasks, changes: SharedChanges, ingest: MqttIngest
    ) -> tuple[list[Part], list[Part], list[Part]]:
        """The runtime's parts for sharing: (before the broker sessions, beside the worker,
        after the worker), in the order the runtime starts them; they stop in reverse."""
        members = Members(self.membership, ingest, tasks)
        membership = Every(
            tasks,
            Stage("membership"),
            self.settings.redis_lease_s / 3,
            members.watch,
            last=self.membership.stop,  # only now: a drain must not meet our own sessions
        )
        # listeners wait on Redis: their waits are their progress, no stall time
        outbox = Runner(
            tasks,
            Stage("instance_outbox", math.inf),
            lambda: self.outbox.run(tasks.sleep),
            self.outbox.stop,
        )
        listener = Runner(
            tasks,
            Stage("shared_units", math.inf),
            lambda: self.units.run_listener(tasks.sleep, changes.apply, changes.catch_up),
            self.units.stop,
        )
        terminals = Runner(
            tasks,
            Stage("terminal_orders", math.inf),
            lambda: self.terminal_orders.run(tasks.sleep),
            self.terminal_orders.stop,
            done=self.timer_lease.release,  # the next instance need not wait for it to lapse
        )
        self.membership.renew()  # a member before its broker sessions get any share
        return [membership], [outbox, listener], [terminals]


def sharing_for(
    settings: Settings, screens_here: Callable[[str, dict[str, Any]], Any]
) -> Sharing | Alone:
    """With FIELDLINK_REDIS_URL the instance shares; without, it is alone."""
    return Sharing(settings, screens_here) if settings.redis_url else Alone()
