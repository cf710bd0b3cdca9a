"""The locked-down broker: the production mosquitto config with the files the CLI writes.

Everything is provisioned through `fieldlink` as an operator would (units add, units
bundle, broker passwords, broker acl) and checked against a real mosquitto.
"""

from __future__ import annotations

import queue
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from edge_agent import config as agent_config
from harness.waiting import eventually
from mqtt_link import BrokerAddress, SessionOptions, new_client
from tests.locked_broker import (
    LockedBroker,
    Probe,
    add_unit,
    fieldlink,
    login,
    make_certificates,
    write_broker_files,
)
from wire import Channel, Topics

TOPICS = Topics()
NOT_AUTHORIZED = 0x87
BAD_LOGIN = (0x86, 0x87)  # v5 "bad user name or password" / "not authorized"
UPSTREAM = (Channel.POSITION, Channel.ALARM, Channel.ACK, Channel.STATE, Channel.HEALTH)


@dataclass
class Deployment:
    broker: LockedBroker
    env: dict[str, str]
    server_url: str
    passwords: dict[str, str]  # unit id -> password from `units add`

    def unit_url(self, unit_id: str, password: str | None = None) -> str:
        password = self.passwords[unit_id] if password is None else password
        return f"mqtt://{unit_id}:{password}@127.0.0.1:{self.broker.port}"

    def tls_unit_url(self, unit_id: str) -> str:
        """Where units log in in production: the TLS listener (`localhost`, the cert's name)."""
        password = self.passwords[unit_id]
        return f"mqtts://{unit_id}:{password}@localhost:{self.broker.tls_port}"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("locked")
    certs = make_certificates(workdir / "certs")
    broker = LockedBroker(workdir / "broker", certs)
    server_url = f"mqtt://fieldlink-server:{secrets.token_urlsafe(16)}@127.0.0.1:{broker.port}"
    env = {
        "FIELDLINK_DB_URL": f"sqlite:///{workdir / 'fieldlink.db'}",
        "FIELDLINK_MQTT_URL": server_url,
        "FIELDLINK_UNIT_MQTT_URL": f"mqtts://localhost:{broker.tls_port}",
        "FIELDLINK_UNIT_CA_FILE": str(certs / "ca.crt"),
    }
    passwords = {u: add_unit(u, env)["mqtt_password"] for u in ("car-1", "car-2")}
    write_broker_files(broker, env)
    broker.start()
    yield Deployment(broker, env, server_url, passwords)
    broker.stop()


@pytest.fixture
def probes() -> Iterator:
    """Factory of connected probes; each must be let in, and is closed after the test."""
    made: list[Probe] = []

    def connect(url: str, protocol: str = "5", **kw) -> Probe:
        probe = Probe(url, protocol, **kw)
        made.append(probe)
        reason = probe.connect()
        assert not reason.is_failure, f"{url.split('@')[0]}...: {reason}"
        return probe

    yield connect
    for probe in made:
        probe.close()


def received_until(probe: Probe, marker: str) -> list[str]:
    """Topics `probe` received up to and including `marker`.

    The broker forwards one client's messages in order, so once a later message from the
    same sender has arrived, a forbidden earlier one that was not seen never will be.
    """
    topics: list[str] = []
    while marker not in topics:
        try:
            topics.append(probe.received.get(timeout=5)[0])
        except queue.Empty:
            raise AssertionError(f"{marker} never arrived; got {topics}") from None
    return topics


def test_units_publish_their_own_topics_and_the_server_reads_them_all(deployment, probes) -> None:
    server = probes(deployment.server_url)
    assert not server.subscribe(f"{TOPICS.root}/units/+/+")[0].is_failure
    car1 = probes(deployment.unit_url("car-1"))
    car2 = probes(deployment.unit_url("car-2"))
    for channel in UPSTREAM:
        assert not car1.publish(TOPICS.unit("car-1", channel)).is_failure
    assert not car2.publish(TOPICS.unit("car-2", Channel.POSITION)).is_failure

    seen = received_until(server, TOPICS.unit("car-1", Channel.HEALTH))
    assert seen == [TOPICS.unit("car-1", c) for c in UPSTREAM]
    assert received_until(server, TOPICS.unit("car-2", Channel.POSITION))


def test_the_server_writes_orders_and_each_unit_reads_only_its_own(deployment, probes) -> None:
    server = probes(deployment.server_url)
    car1 = probes(deployment.unit_url("car-1"))
    car2 = probes(deployment.unit_url("car-2"))
    # car-1 tries every way to see car-2's orders; mosquitto accepts these subscriptions
    # or refuses them, but must never deliver car-2's orders through them
    for pattern in (TOPICS.unit("car-2", Channel.ORDERS), f"{TOPICS.root}/units/+/orders", "#"):
        car1.subscribe(pattern)
    assert not car1.subscribe(TOPICS.unit("car-1", Channel.ORDERS))[0].is_failure
    assert not car2.subscribe(TOPICS.unit("car-2", Channel.ORDERS))[0].is_failure

    assert not server.publish(TOPICS.unit("car-2", Channel.ORDERS)).is_failure
    assert not server.publish(TOPICS.unit("car-1", Channel.ORDERS)).is_failure

    car1_orders = TOPICS.unit("car-1", Channel.ORDERS)
    assert received_until(car1, car1_orders) == [car1_orders]
    assert received_until(car2, TOPICS.unit("car-2", Channel.ORDERS))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_unit_cannot_publish_as_another_unit_nor_send_orders(
    deployment, probes, protocol
) -> None:
    server = probes(deployment.server_url)
    server.subscribe(f"{TOPICS.root}/units/+/+")
    car2 = probes(deployment.unit_url("car-2"))
    car2.subscribe(TOPICS.unit("car-2", Channel.ORDERS))
    car1 = probes(deployment.unit_url("car-1"), protocol)

    forged = [TOPICS.unit("car-2", c) for c in (Channel.POSITION, Channel.ALARM)]
    forged += [TOPICS.unit("car-2", Channel.ORDERS), TOPICS.unit("car-1", Channel.ORDERS)]
    for topic in forged:
        reason = car1.publish(topic)
        # v5 says so in the PUBACK; v3.1.1 has no way to, and mosquitto acks and drops
        assert reason.value == (NOT_AUTHORIZED if protocol == "5" else 0), topic
    marker = TOPICS.unit("car-1", Channel.POSITION)
    car1.publish(marker)

    assert received_until(server, marker) == [marker]
    assert car2.received.empty()


def test_wrong_password_unknown_user_and_anonymous_are_refused(deployment) -> None:
    port = deployment.broker.port
    for url in (
        deployment.unit_url("car-1", password="not-the-password"),
        deployment.unit_url("car-1", password=deployment.passwords["car-2"]),
        f"mqtt://car-99:whatever@127.0.0.1:{port}",
        f"mqtt://127.0.0.1:{port}",
    ):
        assert login(url).value in BAD_LOGIN, url


def test_a_bundle_loads_in_the_agent_and_logs_in_over_tls_with_its_ca(
    deployment, probes, tmp_path
) -> None:
    add_unit("kiosk-1", deployment.env, kind="guard_post")
    bundle = tmp_path / "kiosk-1.toml"
    done = fieldlink(
        "units", "bundle", "kiosk-1", "--output", str(bundle), env=deployment.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    settings = agent_config.load(bundle, env={})
    assert settings.mqtt.url.startswith("mqtts://kiosk-1:")
    ca_file = deployment.broker.certs / "ca.crt"
    assert settings.mqtt.ca_pem == ca_file.read_text()

    # the broker learns the new account on reload (SIGHUP, handled soon after), no restart
    tls = {"ca_file": str(ca_file)}
    assert login(settings.mqtt.url, **tls).value in BAD_LOGIN
    reload_broker(deployment)
    eventually(lambda: not login(settings.mqtt.url, **tls).is_failure, what="reloaded broker")
    server = probes(deployment.server_url)
    server.subscribe(f"{TOPICS.root}/units/+/+")
    # the agent's own client, trusting the CA from the bundle's text
    address = BrokerAddress.parse(settings.mqtt.url)
    assert address.tls and address.port == deployment.broker.tls_port
    kiosk = new_client(address, SessionOptions(settings.client_id, ca_pem=settings.mqtt.ca_pem))
    kiosk.connect(address.host, address.port)
    kiosk.loop_start()
    try:
        kiosk.publish(TOPICS.unit("kiosk-1", Channel.ALARM), b"{}", qos=1).wait_for_publish(10)
        assert received_until(server, TOPICS.unit("kiosk-1", Channel.ALARM))
    finally:
        kiosk.disconnect()
        kiosk.loop_stop()


def test_a_new_bundle_retires_the_password_units_add_printed(deployment, tmp_path) -> None:
    first = deployment.unit_url("car-3", add_unit("car-3", deployment.env)["mqtt_password"])
    reload_broker(deployment)
    eventually(lambda: not login(first).is_failure, what="units add's password let in")

    bundle = tmp_path / "car-3.toml"
    done = fieldlink("units", "bundle", "car-3", "--output", str(bundle), env=deployment.env)
    assert done.returncode == 0, done.stderr
    reload_broker(deployment)
    eventually(lambda: login(first).value in BAD_LOGIN, what="units add's password refused")
    # the bundle points at the TLS listener; its password works on either
    bundled = agent_config.load(bundle, env={}).mqtt.url
    password = BrokerAddress.parse(bundled).password
    assert not login(deployment.unit_url("car-3", password)).is_failure


def reload_broker(deployment: Deployment) -> None:
    write_broker_files(deployment.broker, deployment.env)
    deployment.broker.reload()


def test_a_unit_cannot_take_over_another_units_session_nor_lose_its_queued_order(
    deployment, probes
) -> None:
    tls_url = deployment.tls_unit_url("car-2")
    tls = {"ca_file": str(deployment.broker.certs / "ca.crt")}
    session = {"client_id": "agent-car-2", "session_expiry_s": 3600}
    orders = TOPICS.unit("car-2", Channel.ORDERS)
    car2 = probes(tls_url, **tls, **session)
    assert not car2.subscribe(orders)[0].is_failure
    car2.close()  # away: the broker keeps its session and queues its orders
    server = probes(deployment.server_url)
    assert not server.publish(orders, b'{"order": "queued while away"}').is_failure

    # car-1, with its own password, knocks again and again with car-2's client id
    attacker_url = deployment.tls_unit_url("car-1")
    for _ in range(5):
        attacker = Probe(attacker_url, **tls, client_id="agent-car-2")
        assert not attacker.connect().is_failure  # let in: as itself (car-1), not as car-2
        attacker.close()

    car2 = probes(tls_url, **tls, **session)  # back: its session, its order, are still there
    assert car2.received.get(timeout=5) == (orders, b'{"order": "queued while away"}')
    attacker = Probe(attacker_url, **tls, client_id="agent-car-2")
    attacker.connect()
    try:
        assert server.publish(orders, b'{"order": "live"}').value == 0
        # not thrown off by the attacker's connect: the live order still reaches car-2
        assert car2.received.get(timeout=5) == (orders, b'{"order": "live"}')
        assert car2.client.is_connected()
    finally:
        attacker.close()
