"""The production broker config (deploy/mosquitto/fieldlink.conf) run on loopback for tests.

The shipped file is rendered with temporary ports and paths, not rewritten by hand, so
the tests check the ACL, password and TLS settings a real deployment gets. A throwaway CA
and server certificate come from the openssl CLI, with the commands deploy/README.md
gives (the `cryptography` package is not a dependency of the project).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import queue
import signal
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from harness.server import FIELDLINK
from mqtt_link import PROTOCOLS, BrokerAddress
from server.sim.local_broker import MosquittoProcess, free_port

log = logging.getLogger(__name__)

PROD_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "fieldlink.conf"
TIMEOUT = 5.0


def make_certificates(directory: Path, hostname: str = "localhost") -> Path:
    """A CA and a server certificate for `hostname` and 127.0.0.1; returns the directory
    holding ca.crt, server.crt and server.key, as the production config names them."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=fieldlink test CA", "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}",
        "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    (directory / "server.ext").write_text(f"subjectAltName=DNS:{hostname},IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
    )  # fmt: skip
    return directory


def render_prod_config(directory: Path, certs: Path, port: int, tls_port: int) -> str:
    """deploy/mosquitto/fieldlink.conf with loopback ports and paths under `directory`."""
    text = PROD_CONF.read_text()
    changes = {
        "pid_file /run/mosquitto/mosquitto.pid\n": "",
        "log_dest file /var/log/mosquitto/mosquitto.log": "log_dest stderr",
        "/etc/mosquitto/fieldlink/": f"{directory}/",
        "/etc/mosquitto/certs/": f"{certs}/",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {directory}/data/",
        "listener 1883 127.0.0.1": f"listener {port} 127.0.0.1",
        "listener 8883\n": f"listener {tls_port} 127.0.0.1\n",
    }
    for old, new in changes.items():
        # a production file changed under the tests' feet must fail here, not test less
        assert old in text, f"{PROD_CONF} no longer contains {old!r}: update {__file__}"
        text = text.replace(old, new)
    # started as root, mosquitto would switch to its own user, which cannot read tmp files
    return f"user {getpass.getuser()}\n{text}"


class LockedBroker(MosquittoProcess):
    """mosquitto with the production config: `port` plain (loopback), `tls_port` TLS."""

    def __init__(self, directory: Path, certs: Path):
        super().__init__(directory)
        self.directory = directory
        self.certs = certs
        self.tls_port = free_port()
        self.password_file = directory / "passwd"
        self.acl_file = directory / "acl"
        (directory / "data").mkdir(parents=True, exist_ok=True)

    def config(self) -> str:
        return render_prod_config(self.directory, self.certs, self.port, self.tls_port)

    def ports(self) -> list[int]:
        return [self.port, self.tls_port]

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads the password and ACL files, as `systemctl reload` does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@dataclass
class Probe:
    """A paho client that waits for each answer of the broker and keeps what it receives."""

    url: str
    protocol: str = "5"
    ca_file: str | None = None
    client_id: str = ""
    session_expiry_s: int = 0  # > 0: a session the broker keeps (and resumes) while away
    received: queue.Queue = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.address = BrokerAddress.parse(self.url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=PROTOCOLS[self.protocol],
        )
        if self.address.username:
            self.client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            self.client.tls_set(ca_certs=self.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        self._answers: dict[str, queue.Queue] = {k: queue.Queue() for k in ("connack", "suback")}
        self._pubacks: dict[int, ReasonCode] = {}
        self._puback = threading.Condition()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self._answers["connack"].put(rc)
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self._answers["suback"].put(rcs)
        self.client.on_message = lambda _c, _u, msg: self.received.put((msg.topic, msg.payload))
        self.client.on_publish = self._on_publish

    def _on_publish(self, _c, _u, mid: int, reason_code: ReasonCode, _p) -> None:
        with self._puback:
            self._pubacks[mid] = reason_code
            self._puback.notify_all()

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK's reason code (a refusal is returned, not raised)."""
        if self.session_expiry_s and self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry_s
            self.client.connect(
                self.address.host,
                self.address.port,
                keepalive=10,
                clean_start=False,
                properties=properties,
            )
        else:
            self.client.connect(self.address.host, self.address.port, keepalive=10)
        self.client.loop_start()
        return self._answers["connack"].get(timeout=TIMEOUT)

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self._answers["suback"].get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes = b"{}", qos: int = 1) -> ReasonCode:
        """Publish and return the PUBACK's reason code (always success under 3.1.1)."""
        info = self.client.publish(topic, payload, qos=qos)
        with self._puback:
            if not self._puback.wait_for(lambda: info.mid in self._pubacks, TIMEOUT):
                raise TimeoutError(f"no PUBACK for {topic} within {TIMEOUT}s")
            return self._pubacks.pop(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def login(url: str, **kw: Any) -> ReasonCode:
    """The broker's answer to a login with `url`'s credentials (the probe is closed again)."""
    probe = Probe(url, **kw)
    try:
        return probe.connect()
    finally:
        probe.close()


def fieldlink(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the `fieldlink` command as an operator would, with `env` added to the environment."""
    return subprocess.run(
        [FIELDLINK, *args], env=os.environ | env, capture_output=True, text=True, timeout=60
    )


def add_unit(unit_id: str, env: dict[str, str], kind: str = "patrol_car") -> dict[str, Any]:
    """`fieldlink units add`; returns its JSON (with the unit's broker credentials)."""
    done = fieldlink("units", "add", unit_id, "--kind", kind, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def write_broker_files(broker: LockedBroker, env: dict[str, str]) -> None:
    """`fieldlink broker passwords` and `broker acl` into the files the broker reads."""
    for what, path in (("passwords", broker.password_file), ("acl", broker.acl_file)):
        done = fieldlink("broker", what, "--output", str(path), env=env)
        assert done.returncode == 0, done.stderr
