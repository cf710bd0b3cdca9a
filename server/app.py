"""The app factory and the runtime that assembles the stages of the data's path.

MQTT ──► ingest ──► pipeline ──► live state ──► orders (dispatch) ──► notify
                        └──────► store writer                 └──► store
REST / Socket.IO commands and the timers run in the pipeline's worker too; OSRM is asked
outside it (`drive_times`) so a slow router never holds up positions and acks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_socketio import SocketIO
from peewee import fn
from werkzeug.middleware.proxy_fix import ProxyFix

from server import clock, instances, metrics
from server.arrival import ArrivalRule
from server.config import Settings
from server.dispatch import DriveLeg, EtaModel, Recommendation, Rules
from server.ingest import Inbox, MqttIngest
from server.live_state import LiveState, UnitState
from server.notify import CONSOLE_COALESCE_S, Notifier, TextPacket
from server.orders import OrderService, Shortlist, incident_public
from server.pipeline import Call, Pipeline
from server.plans import load_plans
from server.receipts import Receipts
from server.routing import OsrmRouter, RoutingError
from server.store import Incident, Position, Unit, db, load_grids, open_database
from server.store_writer import StoreWriter
from server.supervise import Stage, supervised
from wire import Topics

if TYPE_CHECKING:
    from server.sockets import ConsoleNamespace

log = logging.getLogger(__name__)

socketio = SocketIO()


DRAIN_GIVE_UP_S = 30.0  # per session; what is not handled by then is drained again later
FIX_FIELDS = ("ts", "lat", "lon", "speed", "heading", "acc", "alt", "mode")


class Runtime:
    """Owns every stage; `start()` and `stop()` read as checklists, stop in reverse order."""

    def __init__(self, settings: Settings, sio: SocketIO):
        self.settings = settings
        self.socketio = sio
        self.topics = Topics(settings.topic_root)
        self.inbox = Inbox()
        # the timers' instance judges silence also by what the others heard
        self.live = LiveState(heard_share_s=settings.offline_after_s / 4)
        self.ingest = MqttIngest(settings, self.inbox, self._client_id_taken)
        # why this instance must not run (set at most once); `run_server` exits with it
        self.refusal: str | None = None
        self.refused = threading.Event()
        self.notifier = Notifier(sio, self.topics, self.ingest.publish, self._delivered)
        clock.run_at(settings.clock_speedup, settings.clock_anchor)
        self.plans = load_plans(settings.plans_file, settings.categories(), settings.ack_timeouts())
        # the nearest-unit policy goes by the straight line: no drive times asked
        osrm_url = settings.osrm_url if settings.dispatch_policy != "nearest" else ""
        self.orders = OrderService(
            self.live,
            self.notifier,
            self.plans,
            Rules(
                EtaModel(settings.road_factor, settings.speeds_ms()),
                settings.position_stale_s,
                settings.dispatch_policy,
            ),
            ArrivalRule(settings.arrival_radius_m, settings.arrival_dwell_s),
            categories=settings.categories(),
            offline_after_s=settings.offline_after_s,
            shortlist=settings.osrm_shortlist if osrm_url else 1,
            coverage_reach_s=settings.coverage_reach_s,
            alarm_ack_s=settings.alarm_ack_s,
        )
        self.router = OsrmRouter(osrm_url, settings.osrm_timeout_s) if osrm_url else None
        if self.router is not None:
            self.orders.route_later = self._route_later
        self.writer = StoreWriter(settings.ingest_batch, settings.ingest_flush_s)
        self.receipts = Receipts(
            self.ingest.publish,
            self.topics,
            settings.receipt_interval_s,
            publish_bulk=self.ingest.publish_bulk,
        )
        self.pipeline = Pipeline(
            self.topics, self.inbox, self.ingest, self.live, self.orders, self.writer, self.receipts
        )
        # every loop beats; /healthz is not ok while one has not for its stall time
        self.timers_stage = Stage("timers")
        self.console_stage = Stage("console_push")
        self.receipts_stage = Stage("receipts")
        self.stages = [
            self.pipeline.stage,
            self.writer.stage,
            self.timers_stage,
            self.console_stage,
            self.receipts_stage,
        ]
        self.instance_id = settings.mqtt_client_id  # unique per instance, as the broker needs
        self.timer_lease: instances.Lease | None = None
        self.terminal_orders: instances.TerminalOrders | None = None
        self.membership: instances.Membership | None = None
        self.shared_units: instances.SharedUnits | None = None
        self._draining: set[str] = set()
        if settings.redis_url:
            self._share_with_other_instances(settings)
        self.running = False
        self.consoles: ConsoleNamespace | None = None  # set by create_app

    def _share_with_other_instances(self, settings: Settings) -> None:
        """Timers run where the lease is; orders reach terminals on every instance."""
        client = instances.connect(settings.redis_url)
        self.timer_lease = instances.Lease(
            client, instances.TIMERS, self.instance_id, settings.redis_lease_s
        )
        self.outbox = instances.Outbox(client)
        self.terminal_orders = instances.TerminalOrders(
            client, self.outbox, self.notifier.terminals_here
        )
        self.notifier.fanout = self.terminal_orders.publish
        self.membership = instances.Membership(client, self.instance_id, settings.redis_lease_s)
        self.shared_units = instances.SharedUnits(
            client, self.outbox, self.instance_id, self._apply_shared, self._catch_up, clock.now
        )
        self.live.on_change = self.shared_units.share

    def _refuse(self, why: str) -> None:
        self.refusal = why
        log.error("%s", why)
        self.refused.set()

    def _client_id_taken(self, client_id: str) -> None:
        """Another server that started before this one holds our client id (its claim on
        the broker, `ingest.ClientIdClaim`): this one must not run beside it."""
        self._refuse(
            f"another server runs with FIELDLINK_MQTT_CLIENT_ID={client_id}: give each "
            "instance its own client id"
        )

    @property
    def runs_timers(self) -> bool:
        return self.timer_lease is None or self.timer_lease.held

    def _supervised(self, stage: Stage, loop: Any, *args: Any) -> Any:
        """A background task that runs `loop` again if it raises, until the runtime stops."""
        run = supervised(stage, loop, lambda: self.running, self.socketio.sleep, *args)
        return self.socketio.start_background_task(run)

    def start(self) -> None:
        self.load_live_state()
        self.running = True
        self.writer_task = self._supervised(self.writer.stage, self.writer.run)
        self.pipeline_task = self._supervised(self.pipeline.stage, self.pipeline.run)
        self.pusher_task = self._supervised(self.console_stage, self._push_to_consoles)
        self.console_task = self._supervised(self.console_stage, self._flush_to_consoles)
        self.timer_task = self._supervised(self.timers_stage, self._run_timers)
        self.receipts_task = self._supervised(
            self.receipts_stage, self.receipts.run, self.socketio.sleep, self.receipts_stage.beat
        )
        # the loops between instances restart on an error too (their own waits on Redis are
        # their progress, so they have no stall time)
        if self.terminal_orders is not None:
            self.terminal_task = self._supervised(
                Stage("terminal_orders"), self.terminal_orders.run, self.socketio.sleep
            )
        if self.shared_units is not None:
            self.shared_tasks = [
                self._supervised(Stage(name), run, self.socketio.sleep)
                for name, run in (
                    ("instance_outbox", self.outbox.run),
                    ("shared_units", self.shared_units.run_listener),
                )
            ]
        if self.membership is not None:
            self.membership.renew()  # a member before its broker sessions get any share
            self.members_task = self._supervised(Stage("membership"), self._watch_instances)
        self.ingest.start()
        log.info("fieldlink started: %d units known", len(self.live.units))

    def stop(self) -> None:
        """Reverse order; the broker session goes last so stored positions still get acked."""
        self.running = False
        if self.membership is not None:
            self.members_task.join()
        if self.terminal_orders is not None:
            self.terminal_orders.stop()
            self.terminal_task.join()
        self.timer_task.join()
        if self.timer_lease is not None:
            self.timer_lease.release()  # the next instance need not wait for it to lapse
        self.pusher_task.join()
        self.pipeline.stop()
        self.pipeline_task.join()
        self.console_task.join()
        self.notifier.flush_consoles()  # the worker's last changes
        self.writer.stop()
        self.writer_task.join()
        self.receipts.stop()  # after the writer: the last stored fixes are confirmed
        self.receipts_task.join()
        if self.shared_units is not None:
            self.shared_units.stop()
            self.outbox.stop()  # after the worker: its last changes go out
            for task in self.shared_tasks:
                task.join()
        self.ingest.stop()
        if self.membership is not None:
            self.membership.stop()  # only now: a drain must not meet our own sessions
        log.info("fieldlink stopped")

    def load_live_state(self) -> None:
        """Units and their latest fixes from the store, so a restart keeps the map."""
        now = clock.now()
        with db.connection_context():
            for row in Unit.select():
                # a unit online before the restart gets the full time to be heard
                last_heard = now if row.online else None
                self.live.add(UnitState.from_row(row, online=row.online, last_heard=last_heard))
            latest = Position.select(Position.unit, fn.MAX(Position.ts).alias("ts")).group_by(
                Position.unit
            )
            query = Position.select().join(
                latest, on=((Position.unit == latest.c.unit_id) & (Position.ts == latest.c.ts))
            )
            for pos in query:
                fix = {k: getattr(pos, k) for k in FIX_FIELDS if getattr(pos, k) is not None}
                self.live.units[pos.unit_id].fix = fix
                self.live.add(self.live.units[pos.unit_id])  # into the spatial index
            self.orders.load(load_grids())

    def snapshot(self) -> dict[str, Any]:
        """What a console shows first: every unit and the incidents still open."""
        open_incidents = Incident.select().where(Incident.state != "closed")
        return {
            "units": [u.public() for u in self.live.units.values()],
            "incidents": [incident_public(i) for i in open_incidents.order_by(Incident.created_at)],
            "alarms": self.orders.unacknowledged_alarms(),  # still ringing, on every console
            "now": clock.now(),  # the server's time: ages on the console are by its clock
        }

    def _apply_shared(self, changes: list[tuple[str, dict[str, Any], float]]) -> None:
        """Another instance's batch of unit changes, applied in the worker like our own: one
        trip for the batch's states, ahead of positions, and one for its fixes."""
        states = [c for c in changes if "fix" not in c[1]]
        fixes = [c for c in changes if "fix" in c[1]]
        if states:
            self.inbox.put(Call(self._apply_shared_in_worker, (states,)), urgent=True)
        if fixes:
            self.inbox.put(Call(self._apply_shared_in_worker, (fixes,)))

    def _apply_shared_in_worker(self, changes: list[tuple[str, dict[str, Any], float]]) -> None:
        for unit_id, change, at in changes:
            try:  # one bad change does not cost the batch's others
                self._apply_one_shared(unit_id, change, at)
            except Exception:
                metrics.STEP_FAILURES.labels("shared_units").inc()
                log.exception("a change of %s from another instance failed", unit_id)

    def _apply_one_shared(self, unit_id: str, change: dict[str, Any], at: float) -> None:
        unit = self.pipeline.known_unit(unit_id)  # provisioned since start-up: from the store
        if unit is None:
            return
        self.live.apply_shared(unit_id, change, at)
        # the scenes a unit was sent to are watched where the order was sent: that instance
        # must see the fixes the others took in as well
        if "fix" in change and unit.targets:
            self.orders.on_fixes(unit, [change["fix"]])

    def _catch_up(self, fixes: dict[str, dict[str, Any]]) -> None:
        """After (re)subscribing: what may have been missed, from the store and Redis."""
        self.inbox.put(Call(self._catch_up_in_worker, (fixes,)), urgent=True)

    def _catch_up_in_worker(self, fixes: dict[str, dict[str, Any]]) -> None:
        now = clock.now()
        for row in Unit.select(
            Unit.id, Unit.status, Unit.status_since, Unit.online, Unit.out_of_service
        ):
            stored = {
                "status": row.status,
                "status_since": row.status_since,
                "online": bool(row.online),
                "out_of_service": bool(row.out_of_service),
            }
            self.live.apply_shared(row.id, stored, now)
        for unit_id, fix in fixes.items():
            self.live.apply_shared(unit_id, {"fix": fix}, fix["ts"])

    def _delivered(self, unit_id: str, order_id: str) -> None:
        """A terminal's callback for an order: runs in a socket thread, so it only enqueues."""
        call = Call(
            self.orders.on_ack, (unit_id, order_id, "received"), {"actor": f"terminal:{unit_id}"}
        )
        self.inbox.put(call, urgent=True)

    def drive_times(
        self, dest: tuple[float, float], recommendations: list[Recommendation]
    ) -> tuple[dict[str, DriveLeg | None], str | None]:
        """OSRM's drive times for the recommendable units, or why there are none.

        Called outside the worker: a router that does not answer costs its timeout, and the
        straight-line estimate stands.
        """
        asked = [r for r in recommendations if r.recommendable][: self.settings.osrm_shortlist]
        if self.router is None or not asked:
            return {}, None
        try:
            legs = self.router.to_point(dest, [(r.lat, r.lon) for r in asked])
        except RoutingError as exc:
            metrics.ROUTING_FAILURES.inc()
            log.warning("drive times: %s; using straight-line estimates", exc)
            return {}, str(exc)
        return {
            r.unit_id: None if leg is None else DriveLeg(leg.duration_s, leg.distance_m)
            for r, leg in zip(asked, legs, strict=True)
        }, None

    def _route_later(
        self, incident: Incident, shortlists: list[Shortlist], actor: str, reason: str
    ) -> None:
        """Auto-dispatch with OSRM: drive times in a task, the choice back in the worker."""
        dest = (incident.lat, incident.lon)
        recs = [r for s in shortlists for r in s.recommendations]
        slots = [s.slot for s in shortlists]

        def ask_then_choose() -> None:
            legs, _ = self.drive_times(dest, recs)
            try:
                self.pipeline.call(self.orders.finish_fill, incident.id, slots, legs, actor, reason)
            except Exception:
                log.exception("dispatch for incident %s failed", incident.id)

        self.socketio.start_background_task(ask_then_choose)

    def _run_timers(self) -> None:
        """Ack deadlines and silent units, checked every `timer_tick_s` in the worker.

        With several instances only the holder of the timers' lease checks, so an order
        escalates once; the lease is renewed right before each check.
        """
        while self.running:
            self.socketio.sleep(self.settings.timer_tick_s)
            self.timers_stage.beat()
            if self.timer_lease is not None and not self.timer_lease.hold():
                continue
            try:
                self.pipeline.call(self._tick_if_ours)
            except TimeoutError:
                log.warning("timers: the worker is busy; checking again next tick")
            except Exception:
                metrics.STEP_FAILURES.labels("timers").inc()
                log.exception("timers failed")

    def _watch_instances(self) -> None:
        """Renew this instance's lease; drain the broker sessions of instances that died."""
        assert self.membership is not None
        while self.running:
            self.membership.renew()
            for member in self.membership.orphans():
                if member in self._draining:
                    continue
                claim = self.membership.claim(member, 3 * DRAIN_GIVE_UP_S)
                if claim is not None:
                    self._draining.add(member)
                    self.socketio.start_background_task(self._drain, member, claim)
            renew_at = time.monotonic() + self.settings.redis_lease_s / 3
            while self.running and time.monotonic() < renew_at:
                self.socketio.sleep(0.1)  # a stop need not wait for the next renewal

    def _drain(self, member: str, claim: instances.Lease) -> None:
        assert self.membership is not None
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

    def _tick_if_ours(self) -> int:
        """In the worker: the timers' check, unless the lease lapsed while this waited in the
        queue (another instance may be running them by now)."""
        if self.timer_lease is not None and not self.timer_lease.valid():
            return 0
        return self.orders.tick()

    def _flush_to_consoles(self) -> None:
        """Changes held back to go together (see `Notifier.console`)."""
        while self.running:
            self.socketio.sleep(CONSOLE_COALESCE_S)
            try:
                self.notifier.flush_consoles()
            except Exception:  # e.g. the message queue down: consoles resync on reconnect
                log.exception("changes could not be sent to the consoles")

    def _push_to_consoles(self) -> None:
        """Unit moves go to consoles at most every `console_push_s`, batched, not per fix."""
        while self.running:
            self.socketio.sleep(self.settings.console_push_s)
            self.console_stage.beat()
            try:
                changed = self.pipeline.call(self.live.take_changed)
                if changed:
                    self.notifier.console("units", changed)
                if self.consoles is not None:
                    self.consoles.end_expired()
            except TimeoutError:
                continue
            except Exception:
                metrics.STEP_FAILURES.labels("console_push").inc()
                log.exception("pushing to consoles failed")


def create_app(settings: Settings | None = None) -> Flask:
    from server import api, auth, web
    from server.sockets import ConsoleNamespace, TerminalNamespace, console_event_failed

    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.config.update(
        FIELDLINK=settings,
        API_TITLE="fieldlink",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
    )
    open_database(settings.db_url)
    auth.init_app(app, settings.session_hours)
    queue = {"message_queue": settings.redis_url} if settings.redis_url else {}
    # A connection's events are handled in turn on its own reader, not each in a thread (or
    # greenlet) of its own: starting one per event cost more than the event (a terminal's
    # ack), and one terminal's events are answered in the order it sent them anyway
    socketio.init_app(
        app,
        async_mode=settings.async_mode,
        serializer=TextPacket,
        async_handlers=False,
        **queue,
    )
    if settings.trusted_proxies:
        # outside Socket.IO's middleware, so its requests are seen as the client's too
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    runtime = Runtime(settings, socketio)
    app.extensions["fieldlink"] = runtime
    runtime.consoles = ConsoleNamespace(runtime)
    socketio.server.register_namespace(TerminalNamespace(runtime))
    socketio.on_namespace(runtime.consoles)
    socketio.on_error_default(console_event_failed)
    api.init_app(app)
    web.init_app(app)
    return app
