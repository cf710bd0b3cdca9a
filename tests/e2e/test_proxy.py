"""deploy/nginx/fieldlink.conf in a real nginx in front of two server instances: TLS, the
login, the REST API and both Socket.IO namespaces over WebSocket through the proxy, and an
order dispatched on the instance the terminal is not connected to."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
import socketio

from harness.clients import UnitLink
from harness.server import ADMIN, ADMIN_PASSWORD
from harness.waiting import eventually
from server.sim.local_broker import end_process, free_port, wait_for_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
NGINX = "/usr/sbin/nginx"


class Nginx:
    """deploy/nginx/fieldlink.conf as shipped, but for its listen ports, its certificate,
    and the upstream naming the test's servers."""

    def __init__(self, workdir: Path, server_ports: list[int]):
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.http_port, self.https_port = free_port(), free_port()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(self.dir / "key.pem"),
             "-out", str(self.dir / "cert.pem")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        upstream = (DEPLOY / "upstream.conf").read_text()
        upstream = re.sub(r"\n    server 127\.0\.0\.1:\d+[^\n]*", "", upstream)
        servers = "".join(
            f"\n    server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;" for p in server_ports
        )
        (self.dir / "upstream.conf").write_text(upstream.replace("ip_hash;", "ip_hash;" + servers))
        site = (DEPLOY / "fieldlink.conf").read_text()
        for shipped, here in (
            ("/etc/nginx/fieldlink/upstream.conf", str(self.dir / "upstream.conf")),
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
            ("listen 443 ssl;", f"listen 127.0.0.1:{self.https_port} ssl;"),
            ("/etc/ssl/fieldlink/fullchain.pem", str(self.dir / "cert.pem")),
            ("/etc/ssl/fieldlink/privkey.pem", str(self.dir / "key.pem")),
        ):
            assert shipped in site, shipped
            site = site.replace(shipped, here)
        (self.dir / "site.conf").write_text(site)
        temp = " ".join(
            f"{kind}_temp_path {self.dir / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.dir / "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} info;\nevents {{}}\n"
            f"http {{ access_log {self.dir / 'access.log'}; {temp}\n"
            f"include {self.dir / 'site.conf'}; }}\n"
        )
        self.proc: subprocess.Popen | None = None

    @property
    def certificate(self) -> str:
        return str(self.dir / "cert.pem")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self) -> Nginx:
        check = subprocess.run(
            [NGINX, "-t", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.https_port, timeout=10)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, timeout=10, name="nginx")


@pytest.fixture
def proxied(cluster, tmp_path):
    instances = cluster(2, trusted_proxies=1)
    token = instances[0].add_unit("car-1")
    for instance in instances:
        instance.start()
    nginx = Nginx(tmp_path, [i.port for i in instances]).start()
    yield instances, nginx, token
    nginx.stop()


def holding(instances: list, unit_id: str):
    """The instance a unit's terminal is connected to (nginx chose it), by its log."""
    return next(i for i in instances if f"terminal for {unit_id} connected" in i.log())


def test_the_console_and_a_terminal_work_through_nginx_over_tls(proxied, mosquitto):
    instances, nginx, token = proxied
    plain = requests.get(f"http://127.0.0.1:{nginx.http_port}/", timeout=5, allow_redirects=False)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")

    browser = requests.Session()
    browser.trust_env = False  # REQUESTS_CA_BUNDLE would overrule the session's certificate
    browser.verify = nginx.certificate
    # as a browser does: over https, changes from a page must name it as their referrer
    browser.headers["Referer"] = nginx.url + "/"
    form = browser.get(nginx.url + "/login", timeout=5).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    signed = browser.post(
        nginx.url + "/login",
        data={"name": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf},
        timeout=5,
    )
    # the server believes nginx: the redirect stays on https, the log names the client
    assert signed.url == nginx.url + "/" and signed.history[0].status_code == 302
    assert any("signed in from 127.0.0.1" in i.log() for i in instances)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.get_dict().items())

    # the Socket.IO clients take the test certificate unchecked (requests above checks it)
    console = socketio.Client(reconnection=False, ssl_verify=False)
    pushed: list = []

    def keep(event: str, data: object) -> None:  # changes close together come as `changes`
        events = data if event == "changes" else [(event, data)]
        pushed.extend(each for name, each in events if name == "units")

    console.on("*", keep, namespace="/console")
    console.connect(
        nginx.url, namespaces=["/console"], headers={"Cookie": cookie}, transports=["websocket"]
    )
    terminal = socketio.Client(reconnection=False, ssl_verify=False)
    orders: list = []
    terminal.on("order", lambda order: orders.append(order) or True, namespace="/terminal")
    terminal.connect(
        nginx.url, namespaces=["/terminal"], auth={"token": token}, transports=["websocket"]
    )
    assert terminal.call("sync", namespace="/terminal", timeout=5)["ok"]

    link = UnitLink(mosquitto.port, "car-1")
    link.online()
    link.fix(31.23, 121.47)
    eventually(lambda: any(u["id"] == "car-1" and u["position"] for b in pushed for u in b))
    body = {"category": "help", "priority": 2, "location": {"lat": 31.231, "lon": 121.47}}
    made = browser.post(
        nginx.url + "/api/v1/incidents", json=body, headers={"X-CSRFToken": csrf}, timeout=5
    )
    assert made.status_code == 400  # the login page's token is not the console page's
    page_csrf = re.search(
        r'name="csrf-token" content="([^"]+)"', browser.get(nginx.url + "/", timeout=5).text
    ).group(1)
    made = browser.post(
        nginx.url + "/api/v1/incidents", json=body, headers={"X-CSRFToken": page_csrf}, timeout=5
    )
    assert made.status_code == 201, made.text
    # dispatched on the instance the terminal is not connected to: the order still reaches it
    other = next(i for i in instances if i is not holding(instances, "car-1"))
    status, _ = other.call(
        "POST", f"/api/v1/incidents/{made.json()['id']}/orders", {"unit_ids": ["car-1"]}
    )
    assert status == 201
    eventually(lambda: orders and orders[0]["incident_id"] == made.json()["id"])
    eventually(
        lambda: other.get(f"/api/v1/incidents/{made.json()['id']}")["orders"][0]["delivered_at"]
    )  # the terminal's callback, on its own instance, confirmed the delivery
    time.sleep(0.2)
    assert terminal.connected and console.connected
    for client in (terminal, console):
        client.disconnect()
    link.close()
