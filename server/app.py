"""The app factory and the runtime that assembles the stages of the data's path.

MQTT ──► ingest ──► pipeline ──► live state ──► orders (dispatch) ──► notify
                        └──────► store writer                 └──► store
REST / Socket.IO commands and the timers run in the pipeline's worker too; OSRM is asked
outside it (`scale/drive_times.py`) so a slow router never holds up positions and acks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from werkzeug.middleware.proxy_fix import ProxyFix

from server import orders
from server.config import Settings
from server.ingest.pipeline import Call, Pipeline
from server.ingest.receipts import Receipts
from server.ingest.sessions import URGENT, Inbound, Inbox, MqttIngest
from server.ingest.store_writer import StoreWriter
from server.notify import CONSOLE_COALESCE_S, LiveTransports, Notifier, ScreenOrders, TextPacket
from server.notify.console_push import ConsolePush
from server.orders import OrderBook, acks
from server.orders.timers import TimerTurn
from server.rules.arrival import ArrivalRule
from server.rules.dispatch import EtaModel, Rules
from server.rules.plans import load_plans
from server.runtime import clock
from server.runtime.supervise import Every, Part, Runner, Stage, Tasks
from server.scale.drive_times import DriveTimes
from server.scale.routing import OsrmRouter
from server.scale.sharing import SharedChanges, sharing_for
from server.state.live_state import LiveState
from server.state.loading import load_live_state
from server.store import db, load_grids, open_database
from server.web.revocation import REVOCATION_CHECK_S, Revocations
from wire import Channel, Topics

log = logging.getLogger(__name__)

socketio = SocketIO()


class Runtime:
    """Builds every stage, and holds them as one list of parts: `start()` starts them in
    order, `stop()` stops them in reverse. Optional stages (several instances on Redis,
    OSRM) are in the list or not; each stage gets what it needs when it is made."""

    def __init__(self, settings: Settings, sio: SocketIO, end_expired: Callable[[], None]):
        self.settings = settings
        self.socketio = sio
        self.end_expired = end_expired  # consoles whose login ended are let go
        # Flask-SocketIO's sleep takes any number of seconds; its stubs say whole ones
        self.tasks = Tasks(sio.start_background_task, sio.sleep)  # type: ignore[arg-type]
        self.topics = Topics(settings.topic_root)
        self.instance_id = settings.mqtt_client_id  # unique per instance, as the broker needs
        # why this instance must not run (set at most once); `run_server` exits with it
        self.refusal: str | None = None
        self.refused = threading.Event()
        clock.run_at(settings.clock_speedup, settings.clock_anchor)

        self.inbox = Inbox()
        self.ingest = MqttIngest(settings, self.inbox, self._client_id_taken)
        transports = LiveTransports(sio, self.topics, self.ingest.publish)
        screens = ScreenOrders(transports, self._delivered)
        sharing = sharing_for(settings, screens.here)
        self.timer_lease = sharing.timer_lease
        self.notifier = Notifier(transports, screens, everywhere=sharing.everywhere)
        # the timers' instance judges silence also by what the others heard
        self.live = LiveState(heard_share_s=settings.offline_after_s / 4, share=sharing.share)
        self.plans = load_plans(settings.plans_file, settings.categories(), settings.ack_timeouts())
        # the nearest-unit policy goes by the straight line: no drive times asked
        osrm_url = settings.osrm_url if settings.dispatch_policy != "nearest" else ""
        router = OsrmRouter(osrm_url, settings.osrm_timeout_s) if osrm_url else None
        self.drive_times = DriveTimes(router, settings.osrm_shortlist, self.tasks, self.call)
        self.book = OrderBook(
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
            shortlist=settings.osrm_shortlist if router else 1,
            coverage_reach_s=settings.coverage_reach_s,
            alarm_ack_s=settings.alarm_ack_s,
            on_scene_limits_s=settings.on_scene_limits_s(),
            route_later=self.drive_times.route_later if router else None,
        )
        self.writer = StoreWriter(settings.ingest_batch, settings.ingest_flush_s)
        self.receipts = Receipts(
            self.ingest.publish,
            self.topics,
            settings.receipt_interval_s,
            publish_bulk=self.ingest.publish_bulk,
        )
        self.pipeline = Pipeline(
            self.topics, self.inbox, self.ingest, self.live, self.book, self.writer, self.receipts
        )
        self.parts, self.stages = self._parts(settings, sharing)
        self.running = False

    def _parts(self, settings: Settings, sharing: Any) -> tuple[list[Part], list[Stage]]:
        """Every running part, in the order it starts: each stops after the ones started
        after it (the broker sessions late, so stored positions are still acknowledged;
        receipts and the consoles' held changes after the worker, its last go out too)."""
        tasks, pipeline, writer = self.tasks, self.pipeline, self.writer
        changes = SharedChanges(self.inbox, self.live, self.book, pipeline.known_unit)
        first, beside_worker, last = sharing.parts(tasks, changes, self.ingest)
        receipts = Every(
            tasks,
            Stage("receipts"),
            settings.receipt_interval_s,
            self.receipts.flush,
            last=self.receipts.flush,
        )
        held = Every(
            tasks,
            Stage("console_flush"),
            CONSOLE_COALESCE_S,
            self.notifier.flush_consoles,
            last=self.notifier.flush_consoles,
        )
        store = Runner(tasks, writer.stage, writer.run, writer.stop)
        worker = Runner(tasks, pipeline.stage, pipeline.run, pipeline.stop)
        timers = Every(
            tasks,
            Stage("timers"),
            settings.timer_tick_s,
            TimerTurn(self.book, self.timer_lease, self.call).turn,
        )
        push = Every(
            tasks,
            Stage("console_push"),
            settings.console_push_s,
            ConsolePush(self.live, self.notifier, self.call, self.end_expired).push,
        )
        revocations = Every(
            tasks,
            Stage("revocations"),
            REVOCATION_CHECK_S,
            Revocations(self.socketio, self.live, self.notifier, self.call).sweep,
        )
        parts: list[Part] = [
            *first,
            self.ingest,
            *beside_worker,
            receipts,
            held,
            store,
            worker,
            timers,
            push,
            revocations,
            *last,
        ]
        stages = [p.stage for p in parts if isinstance(p, Every | Runner)]
        return parts, stages

    def take_unit_message(self, unit_id: str, channel: Channel, payload: bytes) -> None:
        """A unit's message that came another way than the broker (a phone's report, a
        browser's fix): queued as if it had come on the unit's topic, so the same steps take
        it; alarms, acks and states on the urgent queue."""
        message = Inbound(self.topics.unit(unit_id, channel), payload, received_at=clock.now())
        self.inbox.put(message, urgent=channel in URGENT)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` in the worker and wait for its answer (see `Pipeline.call`)."""
        return self.pipeline.call(fn, *args, **kwargs)

    @property
    def runs_timers(self) -> bool:
        return self.timer_lease.held

    def start(self) -> None:
        load_live_state(self.live)
        with db.connection_context():
            orders.load(self.book, load_grids())
        self.running = True
        for part in self.parts:
            part.start()
        log.info("fieldlink started: %d units known", len(self.live.units))

    def stop(self) -> None:
        self.running = False
        for part in reversed(self.parts):
            part.stop()
        log.info("fieldlink stopped")

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

    def _delivered(self, unit_id: str, order_id: str) -> None:
        """A terminal's callback for an order: runs in a socket thread, so it only enqueues."""
        call = Call(
            acks.on_ack,
            (self.book, unit_id, order_id, "received"),
            {"actor": f"terminal:{unit_id}"},
        )
        self.inbox.put(call, urgent=True)


def create_app(settings: Settings | None = None) -> Flask:
    from server.web import api, auth, pages, phones
    from server.web.sockets import ConsoleNamespace, TerminalNamespace, console_event_failed

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
    auth.init_app(app, settings.session_hours, settings.redis_url)
    # A connection's events are handled in turn on its own reader, not each in a thread (or
    # greenlet) of its own: starting one per event cost more than the event (a terminal's
    # ack), and one terminal's events are answered in the order it sent them anyway. As a
    # dict: python-socketio's own options (`serializer`) pass through, which the stubs omit.
    options: dict[str, Any] = {
        "async_mode": settings.async_mode,
        "serializer": TextPacket,
        "async_handlers": False,
    }
    if settings.redis_url:
        options["message_queue"] = settings.redis_url
    socketio.init_app(app, **options)
    if settings.trusted_proxies:
        # outside Socket.IO's middleware, so its requests are seen as the client's too
        n = settings.trusted_proxies
        # Flask's documented way to add WSGI middleware; its types see a method
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    consoles = ConsoleNamespace()
    runtime = Runtime(settings, socketio, consoles.end_expired)
    app.extensions["fieldlink"] = runtime
    # the python-socketio server under Flask-SocketIO, which its stubs leave out
    socketio.server.register_namespace(TerminalNamespace(runtime))  # type: ignore[attr-defined]
    socketio.on_namespace(consoles)
    # called for an Exception only (Flask-SocketIO catches no other); the stubs say BaseException
    socketio.on_error_default(console_event_failed)  # type: ignore[arg-type]
    api.init_app(app)
    pages.init_app(app)
    phones.init_app(app)
    return app
