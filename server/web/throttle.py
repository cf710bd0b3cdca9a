"""How fast anyone may guess: failed web logins per account and per address, failed device
tokens per address (flask-limiter, moving windows; on Redis where FIELDLINK_REDIS_URL is set,
so every instance counts together, else in each instance's memory).

Only failures count: a dispatcher who signs in at the start of every shift is never slowed.
Once a limit is reached, the next attempt is refused before its password is checked, with
the seconds until it may try again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from flask_limiter.util import get_remote_address
from limits import parse

LOGIN_PER_ACCOUNT = "5 per 5 minutes"
LOGIN_PER_ADDRESS = "20 per 5 minutes"
DEVICE_PER_ADDRESS = parse("20 per 5 minutes")

# the refusal sets its own Retry-After, the same seconds the page shows
limiter = Limiter(get_remote_address, strategy="moving-window", headers_enabled=False)


def init_app(app: Flask, redis_url: str) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = redis_url or "memory://"
    limiter.init_app(app)
    # the page a refusal was given (the API's handler would turn it into its JSON error)
    app.register_error_handler(RateLimitExceeded, lambda exc: exc.get_response())


def _account() -> str:
    return "account:" + request.form.get("name", "").strip().lower()[:64]


def _not_a_try() -> bool:
    return request.method != "POST"


def _failed(response: Any) -> bool:
    return bool(response.status_code == 401)


def seconds_until(reset_at: float) -> int:
    return max(1, round(reset_at - time.time()))


def limited_login(view: Callable[..., Any], refused: Callable[[int], Any]) -> Callable[..., Any]:
    """`view` behind both login limits; a refusal is `refused(seconds to wait)`."""

    def on_breach(limit: RequestLimit) -> Any:
        return refused(seconds_until(limit.reset_at))

    for value, key in ((LOGIN_PER_ACCOUNT, _account), (LOGIN_PER_ADDRESS, get_remote_address)):
        view = limiter.limit(
            value, key_func=key, exempt_when=_not_a_try, deduct_when=_failed, on_breach=on_breach
        )(view)
    return view


def device_wait_s(address: str) -> int | None:
    """Seconds this address must wait before its next device token is tried (None: now)."""
    strategy = limiter.limiter
    if strategy.test(DEVICE_PER_ADDRESS, "device", address):
        return None
    reset_at, _remaining = strategy.get_window_stats(DEVICE_PER_ADDRESS, "device", address)
    return seconds_until(reset_at)


def device_token_failed(address: str) -> None:
    limiter.limiter.hit(DEVICE_PER_ADDRESS, "device", address)


class Lockouts:
    """Which lockouts are already in the audit trail: a guesser refused thousands of times
    while locked out makes one entry (and one log line) per account and address and lockout,
    not one per try. In each instance's memory; entries past their lockout are let go."""

    MOST = 10_000  # keys kept before the ones whose lockout ended are let go

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._until: dict[tuple[str, str], float] = {}

    def first(self, name: str, address: str, wait_s: int) -> bool:
        """True for the first refusal of this lockout of `name` from `address`."""
        now = self.clock()
        key = (name, address)
        if self._until.get(key, 0.0) > now:
            return False
        if len(self._until) >= self.MOST:
            self._until = {k: until for k, until in self._until.items() if until > now}
        self._until[key] = now + wait_s
        return True


PHONE_REPORTS = parse("20 per 10 seconds")  # a phone reports every few seconds at most


def phone_report_allowed(unit_id: str) -> bool:
    """Whether a phone's position report is taken: a flood from one device is refused (its
    SOS never is: the endpoint raises it before asking)."""
    return bool(limiter.limiter.hit(PHONE_REPORTS, "phone", unit_id))
