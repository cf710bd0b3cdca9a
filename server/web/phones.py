"""Phones' endpoints: Traccar Client's reports at `/osmand` (the OsmAnd protocol) and
OwnTracks' HTTP mode at `/owntracks` (its MQTT mode needs no endpoint: the broker).

The app has no password: its device id is the unit's device token (`fieldlink units add`
prints it; long and random, stored hashed), so an unknown id counts against the address as
a wrong device token does. A report is read by `server/ingest/osmand.py`, then put on the
pipeline's queues as a unit's message, so the same steps take it as an agent's; an SOS goes
first, on the urgent queue, before any limit is asked. Answers as Traccar's server gives
them: 200, 400 for a report that cannot be read, 404 for an unknown device.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request

from server.ingest import osmand, owntracks
from server.orders import queries
from server.runtime import clock, metrics
from server.runtime.log_limit import LimitedLog
from server.store import by_device_token, db
from server.web import throttle
from wire import Channel, WireError, encode, parse_json

log = logging.getLogger(__name__)
limited = LimitedLog(log)
OWNTRACKS_SOURCE = "owntracks"  # the HTTP mode's refusals are counted as its own


def refused(status: int, reason: str, message: str, source: str = "osmand") -> Response:
    metrics.REJECTED.labels(source, reason).inc()
    limited.warning(reason, "%s report refused (%s): %s", source, reason, message)
    return Response(message + "\n", status, mimetype="text/plain")


def report_view() -> Response:
    now = clock.now()
    address = request.remote_addr or ""
    try:
        report = _read(now)
    except (osmand.ReportError, WireError) as exc:
        return refused(400, "invalid", str(exc))
    # an address guessing ids waits; a phone's SOS from behind the same address never does
    wait_s = throttle.device_wait_s(address)
    if wait_s is not None and not report.sos:
        return refused(429, "throttled", f"too many unknown device ids: try again in {wait_s} s")
    with db.connection_context():
        unit = by_device_token(report.device_id)
    if unit is None:
        throttle.device_token_failed(address)
        return refused(404, "unknown_unit", "no unit has this device id")
    runtime: Any = current_app.extensions["fieldlink"]
    if report.sos:  # an alarm is always decoded, whatever its fix holds (wire.decode)
        alarm = json.dumps(osmand.alarm(report, now)).encode()
        runtime.take_unit_message(unit.id, Channel.ALARM, alarm)
    problem = _take_position(runtime, unit.id, report)
    if problem is None:
        return Response("", 200)
    if report.sos:  # the app must not send the SOS again for its position's sake
        metrics.REJECTED.labels("osmand", problem[1]).inc()
        return Response("", 200)
    return refused(*problem)


def _take_position(runtime: Any, unit_id: str, report: osmand.Report) -> tuple | None:
    """The report's fix onto the queue, or why not: (status, reason, message)."""
    if report.fix is None:
        return 400, "invalid", report.problem
    try:
        payload = encode(Channel.POSITION, report.fix)
    except WireError as exc:
        return 400, "invalid", str(exc)
    if not throttle.phone_report_allowed(unit_id):
        return 429, "flood", "too many reports from this device: one every few seconds"
    runtime.take_unit_message(unit_id, Channel.POSITION, payload)
    return None


def _read(now: float) -> osmand.Report:
    if request.is_json:
        return osmand.from_json(parse_json(request.get_data()), now)
    return osmand.from_query(request.values, now)


def owntracks_view() -> Response:
    """OwnTracks' HTTP mode: Basic auth with the unit's id and device token (the app's
    X-Limit-U must name the same user); the answer is a JSON array: the regions of the
    unit's open orders (`setWaypoints`), or empty."""
    address = request.remote_addr or ""
    wait_s = throttle.device_wait_s(address)
    if wait_s is not None:
        return refused(
            429, "throttled", f"too many wrong logins: try again in {wait_s} s", OWNTRACKS_SOURCE
        )
    login = request.authorization
    with db.connection_context():
        unit = by_device_token(login.password or "") if login else None
    if login is None or unit is None or unit.id != login.username:
        throttle.device_token_failed(address)
        refusal = refused(
            401, "auth", "the unit id and its device token, by Basic auth", OWNTRACKS_SOURCE
        )
        refusal.headers["WWW-Authenticate"] = 'Basic realm="fieldlink"'
        return refusal
    if request.headers.get("X-Limit-U", unit.id) != unit.id:
        return refused(
            400, "invalid", "X-Limit-U names another user than the login", OWNTRACKS_SOURCE
        )
    try:
        read = owntracks.read(parse_json(request.get_data()))
        if read.channel is not None:
            payload = encode(read.channel, read.message)
    except (owntracks.OwnTracksError, WireError) as exc:
        return refused(400, "invalid", str(exc), OWNTRACKS_SOURCE)
    if read.channel is Channel.POSITION and not throttle.phone_report_allowed(unit.id):
        return refused(
            429,
            "flood",
            "too many reports from this device: one every few seconds",
            OWNTRACKS_SOURCE,
        )
    if read.channel is not None:
        current_app.extensions["fieldlink"].take_unit_message(unit.id, read.channel, payload)
    return jsonify(_commands(unit.id))


def _commands(unit_id: str) -> list[dict[str, Any]]:
    with db.connection_context():
        pending = queries.open_orders(unit_id)
    scenes = [
        {"order_id": order.id, "location": {"lat": incident.lat, "lon": incident.lon}}
        for order, incident in pending
    ]
    return [owntracks.waypoints_command(scenes, clock.now())] if scenes else []


def init_app(app: Flask) -> None:
    app.add_url_rule("/osmand", view_func=report_view, methods=["GET", "POST"])
    app.add_url_rule("/owntracks", view_func=owntracks_view, methods=["POST"])
