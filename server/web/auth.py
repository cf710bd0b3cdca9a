"""Sign-in for the command centre: the web login with expiring sessions, Bearer API tokens,
the role check on every REST request, and cross-site request protection.

Flask-Login keeps who is signed in (a session cookie for the web, or `Authorization:
Bearer <api_token>` per request); Flask-WTF checks the CSRF token of every change made
with a cookie (a cross-site page can send the cookie, never the token or a Bearer header).
Who may do what is `server/rules/roles.py`.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Response as WsgiResponse

from server.rules import roles
from server.rules.refusals import Refusal, refusal
from server.runtime import metrics
from server.store import Account, Setting, db, record_event
from server.web import accounts, throttle

log = logging.getLogger(__name__)

login_manager = LoginManager()
csrf = CSRFProtect()

# no sign-in: the API's own description, health checks and Prometheus (keep /metrics on the
# internal network: deploy/README.md)
OPEN_PATHS = frozenset({"/api/v1/openapi.json", "/healthz", "/metrics"})
# pages for the command centre; terminals and kiosks sign in with their device token
SIGNED_IN_PAGES = frozenset({"/", "/dashboard"})
SECRET_KEY_SETTING = "web_secret_key"


@dataclass(frozen=True, eq=False)
class SignedIn(UserMixin):
    """Who makes a request: an account's name and role, and how it signed in."""

    name: str
    role: str
    session_key: str = ""
    by_token: bool = False
    expires_at: float | None = None  # wall time a web session ends; None for a token
    token_hash: str = ""  # signed in by token: the token's digest

    @property
    def credential(self) -> str:
        """What this sign-in rests on: taken back if the account's changes (revocation.py)."""
        return self.token_hash if self.by_token else self.session_key

    def get_id(self) -> str:
        # the session key makes a password reset end the account's open sessions
        return f"{self.name}:{self.session_key}"

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"

    def may(self, permission: str) -> bool:
        return roles.allowed(self.role, permission)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


def _signed_in(account: Account, **how: Any) -> SignedIn:
    return SignedIn(account.name, account.role, account.session_key, **how)


@login_manager.user_loader
def _from_session(session_id: str) -> SignedIn | None:
    name, _, key = session_id.partition(":")
    login_at = session.get("login_at", 0.0)
    expires_at = login_at + session_lifetime_s()
    if time.time() >= expires_at:
        return None
    with db.connection_context():
        account = Account.get_or_none(Account.name == name)
    if account is None or not accounts.same_key(account, key):
        return None
    return _signed_in(account, expires_at=expires_at)


@login_manager.request_loader
def _from_bearer(req: Any) -> SignedIn | None:
    return signed_in_by_token(bearer_token(req.headers.get("Authorization", "")))


def bearer_token(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def signed_in_by_token(token: str) -> SignedIn | None:
    if not token:
        return None
    with db.connection_context():
        account = accounts.by_token(token)
    if account is None:
        return None
    return _signed_in(account, by_token=True, token_hash=account.token_hash)


def session_lifetime_s() -> float:
    return current_app.permanent_session_lifetime.total_seconds()


def who() -> SignedIn | None:
    """The signed-in account of this request, if any (the object, not the request's proxy:
    a console connection keeps it)."""
    return current_user._get_current_object() if current_user.is_authenticated else None


def refuse(status: int, reason: Refusal) -> Response:
    metrics.REJECTED.labels("rest", "auth" if status == 401 else "role").inc()
    reply = jsonify(
        code=status,
        status="Unauthorized" if status == 401 else "Forbidden",
        message=str(reason),
        **reason.public(),
    )
    reply.status_code = status
    if status == 401:
        reply.headers["WWW-Authenticate"] = 'Bearer realm="fieldlink"'
    return reply


def guard() -> WsgiResponse | None:  # a refusal (Flask's) or a redirect (werkzeug's)
    """Every request: the API needs an account whose role may; the console's pages a login."""
    path = request.path
    if path in OPEN_PATHS or path.startswith(("/static/", "/vendor/")):
        return None
    if path.startswith("/api/"):
        user = who()
        if user is None:
            return refuse(401, refusal("sign_in"))
        permission = roles.permission_for(request.method, path)
        if not user.may(permission):
            needs = roles.lowest_role_with(permission)
            return refuse(403, refusal("role_needed", name=user.name, role=user.role, needs=needs))
        if not user.by_token and request.method not in roles.READS:
            csrf.protect()
    elif path in SIGNED_IN_PAGES and who() is None:
        return redirect(url_for("login", next=request.full_path.rstrip("?")))
    return None


def _safe_next(target: str | None) -> str:
    """Only a path on this server: a login link must not send anyone elsewhere."""
    target = target or "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
    ):
        return "/"
    return target


def audit(actor: str, kind: str, **refs: Any) -> None:
    """Sign-ins and sign-outs in the audit trail, written in order by the worker."""
    runtime = current_app.extensions["fieldlink"]
    runtime.pipeline.call(record_event, actor[:64], kind, address=request.remote_addr, **refs)


def login() -> Any:
    error = ""
    if request.method == "POST":
        csrf.protect()
        name = request.form.get("name", "").strip()
        with db.connection_context():
            account = accounts.by_password(name, request.form.get("password", ""))
        if account is None:
            metrics.REJECTED.labels("web", "login").inc()
            log.warning("failed login for %r from %s", name, request.remote_addr)
            audit(f"web:{name}", "login_failed")
            error = "bad_login"
        else:
            session.clear()
            session.permanent = True
            session["login_at"] = time.time()
            user = _signed_in(account)
            login_user(user)
            log.info("%s (%s) signed in from %s", account.name, account.role, request.remote_addr)
            audit(user.actor, "login")
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), 401 if error else 200


lockouts = throttle.Lockouts()


def _login_throttled(wait_s: int) -> Response:
    name = request.form.get("name", "").strip()
    metrics.REJECTED.labels("web", "throttled").inc()  # every refused try is counted
    if lockouts.first(name, request.remote_addr or "", wait_s):
        log.warning("login for %r from %s throttled for %d s", name, request.remote_addr, wait_s)
        audit(f"web:{name}", "login_throttled", wait_s=wait_s)
    page = render_template("login.html", error="throttled", wait_s=wait_s)
    return Response(page, 429, {"Retry-After": str(wait_s)})


def logout() -> Any:
    """Signing out ends every session of the account: a session cookie is kept by the browser,
    so only a new key on the server makes a copied one worthless."""
    csrf.protect()
    user = who()
    if user is not None:
        with db.connection_context():
            accounts.end_sessions(user.name)
        audit(user.actor, "logout")
    logout_user()
    session.clear()
    return redirect(url_for("login"))


def strict_transport(response: WsgiResponse) -> WsgiResponse:
    """Over TLS, browsers are told to come back only over TLS for a year (HSTS)."""
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _csrf_refused(exc: CSRFError) -> Any:
    metrics.REJECTED.labels("web", "csrf").inc()
    message = f"{exc.description} Reload the page and try again."
    if request.path.startswith("/api/"):
        return jsonify(code=400, status="Bad Request", message=message), 400
    return render_template("login.html", error="csrf"), 400


def secret_key(configured: str) -> str:
    """The configured key, or one made once and kept in the store: web sessions then outlive
    a restart and every server instance signs them alike."""
    if configured:
        return configured
    with db.connection_context():
        Setting.insert(
            key=SECRET_KEY_SETTING, value=secrets.token_hex(32)
        ).on_conflict_ignore().execute()
        return Setting.get_by_id(SECRET_KEY_SETTING).value


class Sessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, their signer made once per key: Flask makes it anew
    for every request and every Socket.IO event, and making it (it test-serialises) cost
    more than reading the cookie."""

    def __init__(self) -> None:
        self._signers: dict[Any, URLSafeTimedSerializer | None] = {}

    def get_cookie_secure(self, app: Flask) -> bool:
        # served over TLS (or behind a trusted proxy that says so): the cookie never
        # travels in clear
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if key not in self._signers:
            self._signers[key] = super().get_signing_serializer(app)
        return self._signers[key]


def init_app(app: Flask, session_hours: float, redis_url: str) -> None:
    app.config.update(
        SECRET_KEY=secret_key(app.config["FIELDLINK"].secret_key),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=session_hours),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # the check runs in `guard` for changes made with a cookie, not for Bearer calls
        WTF_CSRF_CHECK_DEFAULT=False,
        # the token lives as long as the session: a console stays open for a whole shift
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = Sessions()
    login_manager.init_app(app)
    csrf.init_app(app)
    app.before_request(guard)
    app.after_request(strict_transport)
    app.register_error_handler(CSRFError, _csrf_refused)
    throttle.init_app(app, redis_url)
    app.add_url_rule(
        "/login",
        "login",
        throttle.limited_login(login, _login_throttled),
        methods=["GET", "POST"],
    )
    app.add_url_rule("/logout", "logout", logout, methods=["POST"])
