"""`fieldlink server`: run until SIGTERM; refuse to run beside a server on our client id."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from server.commands.base import cli, db_url_option, settings_from_env
from server.config import ASYNC_MODES, Settings

log = logging.getLogger(__name__)


@cli.command()
@click.option("--host", default=None, help="Listen address [env FIELDLINK_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [env FIELDLINK_PORT; 8080].")
@click.option("--mqtt-url", default=None, help="Broker URL [env FIELDLINK_MQTT_URL].")
@db_url_option
@click.option(
    "--async-mode",
    type=click.Choice(ASYNC_MODES),
    default=None,
    help="Socket.IO async mode [env FIELDLINK_ASYNC_MODE].",
)
def server(**options: Any) -> None:
    """Run the server: MQTT ingest, dispatch, REST API and Socket.IO."""
    run_server(settings_from_env(**options))


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then stop every stage cleanly. A setting that would lose
    alarms (`Runtime.refusal`) stops the server as SIGTERM does, and it exits with 2."""
    from server.app import create_app, socketio

    app = create_app(settings)
    runtime = app.extensions["fieldlink"]
    runtime.start()
    refusal = threading.Thread(target=_stop_when_refused, args=(runtime,), daemon=True)
    refusal.start()
    # What start-up made (modules, schemas, the app) lives as long as the process: frozen
    # out of the collector's full passes, which walked it all in ~40 ms, stalling every
    # connection, every few seconds under load. Start-up's garbage goes first, or it would
    # be kept for good.
    gc.collect()
    gc.freeze()
    log.info("serving on http://%s:%s (%s)", settings.host, settings.port, settings.async_mode)
    try:
        if settings.async_mode == "gevent":
            signal.signal(signal.SIGTERM, lambda *_: socketio.stop())
            socketio.run(app, host=settings.host, port=settings.port, log_output=False)
        else:
            _serve_threaded(app, settings)
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
    if runtime.refusal:
        print(f"fieldlink server: {runtime.refusal}", file=sys.stderr)
        raise SystemExit(2)


def _stop_when_refused(runtime: Any) -> None:
    runtime.refused.wait()
    os.kill(os.getpid(), signal.SIGTERM)


def _serve_threaded(app: Any, settings: Settings) -> None:
    """Werkzeug's threaded server with simple-websocket, as Flask-SocketIO's threading mode
    runs it, kept here so SIGTERM can shut it down from outside a request."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, *_: Any) -> None:
            """No access log, as under gevent: a proxy in front keeps one, and formatting a
            line per request was ~2 % of the server at 200 orders/s."""

    http = make_server(settings.host, settings.port, app, threaded=True, request_handler=Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=http.shutdown).start())
    http.serve_forever()
