"""For whoever runs the server: Prometheus metrics and the health check."""

from __future__ import annotations

import hmac

from flask import current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.rules.refusals import refusal
from server.web.api.common import runtime
from server.web.auth import bearer_token, refuse


def metrics_view():
    wanted = current_app.config["FIELDLINK"].metrics_token
    given = bearer_token(request.headers.get("Authorization", ""))
    if wanted and not hmac.compare_digest(given.encode(), wanted.encode()):
        return refuse(401, refusal("metrics_token"))
    return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def health_view():
    """Not ok while the runtime is stopped or one of its loops has made no progress for its
    stall time (a worker that stopped, a store that is away)."""
    rt = runtime()
    stalled = [stage.name for stage in rt.stages if stage.stalled()]
    ok = rt.running and not stalled
    body = {
        "ok": ok,
        "broker": rt.ingest.connected,
        "units": len(rt.live.units),
        "instance": rt.instance_id,
        "runs_timers": rt.runs_timers,
        "stalled": stalled,
        "stages": {stage.name: round(stage.silent_s(), 1) for stage in rt.stages},
    }
    return body, 200 if ok else 503
