"""A bare Flask-SocketIO server with the order path's shape and nothing else: the baseline of
`bench.terminals`.

`POST /orders {"unit_id", "incident_id"}` emits an `order` to that unit's terminal (with a
callback: delivered) and answers at once; an `ack` event is answered `{"ok": true}`. Each
order's times (made, delivered, accepted) stay in memory, `GET /orders` returns them. No
worker, no store, no broker: what Socket.IO and HTTP alone cost for the same clients.

    python -m bench.sio_echo --port 8765 --async-mode gevent
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from typing import Any

TERMINAL_NS = "/terminal"
CONSOLE_NS = "/console"


def create_app(async_mode: str) -> tuple[Any, Any]:
    """The app and its SocketIO; imported here so gevent can patch the standard library first."""
    from flask import Flask, jsonify, request
    from flask_socketio import ConnectionRefusedError, SocketIO

    app = Flask(__name__)
    sio = SocketIO(app, async_mode=async_mode)
    sid_of: dict[str, str] = {}  # unit -> its terminal's sid
    unit_of: dict[str, str] = {}
    times: dict[str, dict[str, Any]] = {}  # order id -> its times
    ids = itertools.count(1)
    lock = threading.Lock()

    @sio.on("connect", namespace=TERMINAL_NS)
    def terminal_connect(auth: dict | None = None) -> None:
        unit_id = (auth or {}).get("token")  # here the token is the unit id
        if not unit_id:
            raise ConnectionRefusedError("missing token")
        sid_of[unit_id] = request.sid
        unit_of[request.sid] = unit_id

    @sio.on("disconnect", namespace=TERMINAL_NS)
    def terminal_disconnect(*_: Any) -> None:
        unit_of.pop(request.sid, None)

    @sio.on("ack", namespace=TERMINAL_NS)
    def ack(data: Any = None) -> dict[str, Any]:
        if isinstance(data, dict) and data.get("status") == "accepted":
            with lock:
                times.get(data.get("order_id"), {}).setdefault("accepted_at", time.time())
        return {"ok": True}

    @sio.on("connect", namespace=CONSOLE_NS)
    def console_connect(*_: Any) -> None:
        pass

    @app.post("/orders")
    def send_order():
        body = request.get_json()
        unit_id = body["unit_id"]
        sid = sid_of.get(unit_id)
        if sid is None:
            return jsonify({"message": f"no terminal for {unit_id}"}), 409
        order_id = f"o{next(ids)}"
        now = time.time()
        with lock:
            times[order_id] = {"sent_at": now}

        def delivered(*_: Any) -> None:
            with lock:
                times[order_id].setdefault("delivered_at", time.time())

        # every field the wire contract asks of an order (wire.screens): a terminal refuses,
        # and never accepts, one without them
        order = {
            "order_id": order_id,
            "incident_id": body["incident_id"],
            "unit_id": unit_id,
            "kind": "dispatch",
            "state": "sent",
            "ts": now,
            "priority": 1,
            "category": "panic",
            "location": {"lat": 31.23, "lon": 121.47, "address": ""},
        }
        sio.emit("order", order, to=sid, namespace=TERMINAL_NS, callback=delivered)
        return jsonify([{"order_id": order_id, "unit_id": unit_id}]), 201

    @app.get("/orders")
    def orders():
        with lock:
            return jsonify([{"order_id": k, **v} for k, v in times.items()])

    @app.get("/healthz")
    def health():
        return jsonify({"ok": True})

    return app, sio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sio_echo", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--async-mode", choices=("threading", "gevent"), default="threading")
    args = parser.parse_args(argv)
    if args.async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()
    app, sio = create_app(args.async_mode)
    sio.run(app, host="127.0.0.1", port=args.port, log_output=False, allow_unsafe_werkzeug=True)


if __name__ == "__main__":
    main()
