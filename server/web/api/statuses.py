"""Every status an operation can answer with, in its OpenAPI document.

flask-smorest documents a route's own answers (its response, its arguments' 422, its
`alt_response`s) and a catch-all `default`, which lets a client (or schemathesis) take any
status as documented. The catch-all goes; instead each operation lists what every request
may meet on its way, by method and path: one table, applied by an apispec plugin.
"""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin

from server.rules.roles import READS

# (applies to (method, path), status, why): what the guard, the body parser, the path's ids
# and the worker answer beside the route itself
ON_THE_WAY = (
    (lambda _m, _p: True, 401, "no valid API token or session: sign in"),
    (
        lambda m, path: "{" in path or m not in READS,
        404,
        "nothing has an id the path or the body names",
    ),
    (lambda m, _p: m not in READS, 400, "a body not JSON by the input rules, or no CSRF token"),
    (lambda m, _p: m not in READS, 403, "the account's role may not make this change"),
    (lambda m, _p: m not in READS, 409, "not now: the incident or order is past this step"),
    (lambda m, _p: m not in READS, 413, "a body over 10 MiB, refused before it is read"),
    (lambda m, _p: m not in READS, 503, "the server is busy: try again in a moment"),
)


ERROR_BODY = {"application/json": {"schema": "Error"}}


def statuses(method: str, path: str) -> dict[int, str]:
    method = method.upper()
    return {status: why for applies, status, why in ON_THE_WAY if applies(method, path)}


class EveryStatus(BasePlugin):
    """Adds ON_THE_WAY's statuses to each operation and drops flask-smorest's `default`."""

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **_: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)
            for status, why in statuses(method, path or "").items():
                # flask-smorest's error body: {"code", "status", "message"}
                responses.setdefault(str(status), {"description": why, "content": ERROR_BODY})
