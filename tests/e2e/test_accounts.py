"""Accounts and roles: `fieldlink users`, Bearer tokens and the role on every REST route and
console event, the web login with expiring sessions, and cross-site request protection."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import requests
import socketio

from harness.clients import Console
from harness.server import ADMIN, ADMIN_PASSWORD
from harness.waiting import eventually
from server.rules import roles
from server.store import Event, db
from tests.conftest import DATA


# -- the rules, pure ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("GET", "/api/v1/units", "view"),
        ("GET", "/api/v1/kpis.csv", "view"),
        ("POST", "/api/v1/incidents", "dispatch"),
        ("POST", "/api/v1/incidents/abc/orders", "dispatch"),
        ("PATCH", "/api/v1/incidents/abc", "dispatch"),
        ("PUT", "/api/v1/units/car-1/status", "dispatch"),
        ("PUT", "/api/v1/duty", "command"),
        ("PUT", "/api/v1/duty/", "command"),
        ("PUT", "/api/v1/grids", "admin"),
        ("put", "/api/v1/posts", "admin"),
    ],
)
def test_each_request_needs_the_permission_of_what_it_does(method, path, permission) -> None:
    assert roles.permission_for(method, path) == permission


def test_each_role_may_what_its_work_needs_and_no_more() -> None:
    may = {r: {p for p in roles.PERMISSIONS if roles.allowed(r, p)} for r in roles.ROLES}
    assert may == {
        "dispatcher": {"view", "dispatch"},
        "commander": {"view", "dispatch", "command"},
        "admin": {"view", "dispatch", "command", "admin"},
    }
    assert not roles.allowed("visitor", "view")
    assert roles.lowest_role_with("command") == "commander"


# -- through a running server ------------------------------------------------------------
def users(server, *args: str) -> subprocess.CompletedProcess:
    return server.command("users", *args)


def add_user(server, name: str, role: str) -> dict:
    added = users(server, "add", name, "--role", role)
    assert added.returncode == 0, added.stderr
    return json.loads(added.stdout)


@pytest.fixture
def server(server_factory):
    server = server_factory()
    server.add_unit("car-1")
    return server.start()


def test_users_add_prints_a_token_and_a_password_and_refuses_what_it_cannot_do(server) -> None:
    li = add_user(server, "li", "dispatcher")
    assert li["name"] == "li" and li["role"] == "dispatcher"
    assert len(li["api_token"]) >= 40 and len(li["password"]) >= 12
    again = users(server, "add", "li", "--role", "admin")
    assert again.returncode != 0 and "users password li" in again.stderr
    bad_role = users(server, "add", "wang", "--role", "chief")
    assert bad_role.returncode != 0 and "dispatcher" in bad_role.stderr
    listed = users(server, "list")
    assert "li" in listed.stdout and "dispatcher" in listed.stdout
    assert li["password"] not in listed.stdout


def test_the_api_refuses_no_token_or_a_wrong_one_and_says_how_to_sign_in(server) -> None:
    for path in ("/api/v1/units", "/api/v1/incidents.csv", "/api/v1/units/car-1/track.gpx"):
        for token in ("", "not-a-token"):
            reply = server.request("GET", path, token=token)
            assert reply.status_code == 401, (path, reply.text)
            assert "fieldlink users add" in reply.json()["message"]
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    status, _ = server.call("POST", "/api/v1/incidents", {}, token="")
    assert status == 401
    # open: health checks, metrics for Prometheus, the API's own description
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(server.url + "/api/v1/openapi.json", timeout=5).status_code == 200
    assert server.metric("fieldlink_rejected_total", source="rest", reason="auth") >= 7


def test_each_role_does_its_work_and_is_refused_the_rest(server) -> None:
    li = add_user(server, "li", "dispatcher")["api_token"]
    zhao = add_user(server, "zhao", "commander")["api_token"]
    body = {"category": "help", "priority": 2, "location": {"lat": 31.2, "lon": 121.4}}
    status, incident = server.call("POST", "/api/v1/incidents", body, token=li)
    assert status == 201
    timeline = server.get(f"/api/v1/incidents/{incident['id']}/timeline")
    assert ("dispatcher:li", "incident_created") in [(e["actor"], e["kind"]) for e in timeline]

    status, refused = server.call("PUT", "/api/v1/duty", {"level": "reinforced"}, token=li)
    assert status == 403 and refused["message"] == "li is a dispatcher: this needs a commander"
    assert server.call("PUT", "/api/v1/duty", {"level": "reinforced"}, token=zhao)[0] == 200
    grids = json.loads((DATA / "city_grids.geojson").read_text())
    status, refused = server.call("PUT", "/api/v1/grids", grids, token=zhao)
    assert status == 403 and refused["message"] == "zhao is a commander: this needs an admin"
    assert server.call("PUT", "/api/v1/grids", grids)[0] == 200  # the admin

    # a new token: the old one stops working at once; a removed account signs in no more
    new = json.loads(users(server, "token", "li").stdout)["api_token"]
    assert server.call("GET", "/api/v1/units", token=li)[0] == 401
    assert server.call("GET", "/api/v1/units", token=new)[0] == 200
    assert users(server, "remove", "li").returncode == 0
    assert server.call("GET", "/api/v1/units", token=new)[0] == 401


def test_the_console_namespace_takes_only_signed_in_accounts(server) -> None:
    for auth in (None, {"token": "forged"}, {"token": ""}):
        client = socketio.Client(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(server.url, namespaces=["/console"], auth=auth, wait_timeout=5)
        client.disconnect()
    li = add_user(server, "li", "dispatcher")["api_token"]
    console = Console(server.url, li)
    answer = console.sio.call("sync", namespace="/console", timeout=5)
    assert answer["ok"] and [u["id"] for u in answer["units"]] == ["car-1"]
    console.close()


def login_form(browser: requests.Session, url: str) -> str:
    page = browser.get(url, timeout=5)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(browser: requests.Session, url: str, password: str = ADMIN_PASSWORD):
    csrf = login_form(browser, f"{url}/login")
    return browser.post(
        f"{url}/login?next=/dashboard",
        data={"name": ADMIN, "password": password, "csrf_token": csrf},
        timeout=5,
    )


def test_the_web_login_guards_the_console_and_every_change_needs_the_page_token(server) -> None:
    browser = requests.Session()
    first = browser.get(server.url + "/", timeout=5, allow_redirects=False)
    assert first.status_code == 302 and first.headers["Location"].endswith("/login?next=/")
    wrong = sign_in(browser, server.url, password="guessing-again")
    assert wrong.status_code == 401 and 'data-t="bad_login"' in wrong.text
    # a form posted from another site has no token
    forged = browser.post(
        f"{server.url}/login", data={"name": ADMIN, "password": ADMIN_PASSWORD}, timeout=5
    )
    assert forged.status_code == 400

    signed = sign_in(browser, server.url)
    assert signed.url == f"{server.url}/dashboard"  # where the login was asked for
    cookie = browser.cookies.get_dict()["session"]
    assert "HttpOnly" in signed.history[0].headers["Set-Cookie"]
    assert "SameSite=Lax" in signed.history[0].headers["Set-Cookie"]
    console = browser.get(server.url + "/", timeout=5)
    assert console.ok and ">admin</span>" in console.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', console.text).group(1)
    assert browser.get(server.url + "/api/v1/units", timeout=5).json()[0]["id"] == "car-1"

    body = {"category": "help", "priority": 2, "location": {"lat": 31.2, "lon": 121.4}}
    # the cookie alone, as a cross-site page could send it, changes nothing
    refused = browser.post(server.url + "/api/v1/incidents", json=body, timeout=5)
    assert refused.status_code == 400 and "CSRF" in refused.json()["message"]
    made = browser.post(
        server.url + "/api/v1/incidents", json=body, headers={"X-CSRFToken": csrf}, timeout=5
    )
    assert made.status_code == 201
    assert server.get("/api/v1/incidents")[0]["id"] == made.json()["id"]

    # an outside link after the login goes nowhere but here
    other = requests.Session()
    csrf_login = login_form(other, f"{server.url}/login")
    away = other.post(
        f"{server.url}/login?next=//evil.example/",
        data={"name": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_login},
        timeout=5,
        allow_redirects=False,
    )
    assert away.headers["Location"] == "/"

    browser.post(server.url + "/logout", data={"csrf_token": csrf}, timeout=5)
    assert browser.get(server.url + "/api/v1/units", timeout=5).status_code == 401
    # a new password ends the sessions still open elsewhere
    stale = requests.Session()
    stale.cookies.set("session", cookie)
    assert stale.get(server.url + "/api/v1/units", timeout=5).status_code == 401  # logged out
    again = requests.Session()
    sign_in(again, server.url)
    assert again.get(server.url + "/api/v1/units", timeout=5).ok
    assert users(server, "password", ADMIN).returncode == 0
    assert again.get(server.url + "/api/v1/units", timeout=5).status_code == 401


def test_a_session_expires_and_its_console_connection_ends(server_factory) -> None:
    server = server_factory(session_hours=4 / 3600).start()  # a four-second shift
    browser = requests.Session()
    sign_in(browser, server.url)
    started = time.monotonic()
    assert browser.get(server.url + "/api/v1/units", timeout=5).ok
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.get_dict().items())
    console = socketio.Client(reconnection=False)
    console.connect(server.url, namespaces=["/console"], headers={"Cookie": cookie})
    assert console.call("sync", namespace="/console", timeout=5)["ok"]
    eventually(lambda: not console.connected, timeout=10)
    assert time.monotonic() - started >= 3.5
    reply = browser.get(server.url + "/", timeout=5, allow_redirects=False)
    assert reply.status_code == 302 and "/login" in reply.headers["Location"]
    assert browser.get(server.url + "/api/v1/units", timeout=5).status_code == 401


def test_guessing_is_throttled_per_account_and_address_and_each_try_is_audited(server) -> None:
    li = add_user(server, "li", "dispatcher")
    browser = requests.Session()
    for _ in range(5):  # the account's limit: five wrong passwords in five minutes
        assert sign_in(browser, server.url, password="guess").status_code == 401
    # the sixth is refused before its password is looked at, even the right one
    locked = sign_in(browser, server.url)
    assert locked.status_code == 429 and 'data-t="throttled"' in locked.text
    wait_s = int(locked.headers["Retry-After"])
    assert 0 < wait_s <= 300 and f'<span id="wait">{wait_s}</span>' in locked.text
    for _ in range(10):  # a guesser who goes on: refused, counted, in the trail once
        assert sign_in(browser, server.url, password="guess").status_code == 429
    # the account is throttled, not the address: li signs in from the same place
    li_browser = requests.Session()
    csrf = login_form(li_browser, f"{server.url}/login")
    li_in = li_browser.post(
        f"{server.url}/login", data={"name": "li", "password": li["password"], "csrf_token": csrf}
    )
    assert li_in.ok and li_in.url == f"{server.url}/"
    console = li_browser.get(server.url + "/", timeout=5).text
    page_csrf = re.search(r'name="csrf-token" content="([^"]+)"', console).group(1)
    li_browser.post(server.url + "/logout", data={"csrf_token": page_csrf}, timeout=5)
    # the address's limit: twenty wrong tries, whatever the names
    for n in range(15):
        csrf = login_form(browser, f"{server.url}/login")
        tried = browser.post(
            f"{server.url}/login", data={"name": f"user{n}", "password": "x", "csrf_token": csrf}
        )
        assert tried.status_code == 401, n
    assert sign_in(browser, server.url).status_code == 429
    csrf = login_form(browser, f"{server.url}/login")
    other = browser.post(
        f"{server.url}/login", data={"name": "li", "password": li["password"], "csrf_token": csrf}
    )
    assert other.status_code == 429  # now this address waits, for every account

    with db.connection_context():
        kinds = [(e.actor, e.kind) for e in Event.select().order_by(Event.id)]
    assert kinds.count((f"web:{ADMIN}", "login_failed")) == 5
    assert kinds.count((f"web:{ADMIN}", "login_throttled")) == 1  # one lockout, one entry
    assert ("dispatcher:li", "login") in kinds and ("dispatcher:li", "logout") in kinds
    assert server.metric("fieldlink_rejected_total", source="web", reason="throttled") >= 13


def test_wrong_device_tokens_are_throttled_per_address(server) -> None:
    def connect(token: str) -> str:
        """What the server answered: "connected", or the refusal's message."""
        client = socketio.Client(reconnection=False)
        refusals: list[str] = []
        client.on("connect_error", lambda data: refusals.append(str(data)), namespace="/terminal")
        try:
            client.connect(server.url, namespaces=["/terminal"], auth={"token": token})
            return "connected"
        except socketio.exceptions.ConnectionError:
            return " ".join(refusals)
        finally:
            client.disconnect()

    token = server.add_unit("car-2")
    assert connect(token) == "connected"
    for n in range(20):
        assert "unknown or missing device token" in connect(f"guess-{n}")
    assert "try again in" in connect("guess-21")
    assert "try again in" in connect(token)  # this address waits, good token or not


def test_metrics_want_their_token_and_tls_gets_secure_cookies_and_hsts(server_factory) -> None:
    server = server_factory(metrics_token="prometheus-secret", trusted_proxies=1).start()
    assert requests.get(server.url + "/metrics", timeout=5).status_code == 401
    assert server.request("GET", "/metrics").status_code == 401  # an account's token is not it
    scrape = server.request("GET", "/metrics", token="prometheus-secret")
    assert scrape.ok and "fieldlink_" in scrape.text

    def signed_in(proto: str) -> requests.Response:
        browser = requests.Session()
        csrf = login_form(browser, f"{server.url}/login")
        return browser.post(
            f"{server.url}/login",
            data={"name": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf},
            headers={"X-Forwarded-Proto": proto},
            allow_redirects=False,
            timeout=5,
        )

    over_tls = signed_in("https")  # as nginx says it for a browser on https
    assert "; Secure" in over_tls.headers["Set-Cookie"]
    assert over_tls.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = signed_in("http")
    assert "Secure" not in plain.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in plain.headers
