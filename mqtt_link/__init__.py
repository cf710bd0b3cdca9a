"""The MQTT session both sides use, outside the wire contract: broker URLs, clients, fallback."""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason: the broker does not speak this MQTT version
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """mqtt://[user:password@]host[:port] (1883) or mqtts://... (8883, TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL {url!r}: use mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True)
class SessionOptions:
    """A persistent session: the broker keeps subscriptions and queued QoS 1 messages."""

    client_id: str
    protocol: str = "5"
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    ca_file: str | None = None
    ca_pem: str | None = None  # the CA certificate inline, instead of a file


def new_client(
    address: BrokerAddress, options: SessionOptions, manual_ack: bool = False, clean: bool = False
) -> mqtt.Client:
    """A paho client for a persistent session (connect it with `connect_persistent`).

    With `manual_ack`, a received QoS 1 message is acknowledged only when the caller says
    so, after it has been stored: a crash before that gets it redelivered, not lost.
    With `clean`, the session is a fresh one that ends with the connection (`end_session`).
    """
    v5 = options.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=PROTOCOLS[options.protocol],
        clean_session=None if v5 else clean,
        manual_ack=manual_ack,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls and options.ca_pem:
        client.tls_set_context(ssl.create_default_context(cadata=options.ca_pem))
    elif address.tls:
        client.tls_set(ca_certs=options.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    return client


def connect_persistent(
    client: mqtt.Client, address: BrokerAddress, options: SessionOptions
) -> None:
    """Start connecting without blocking (the network loop retries until the broker is up)."""
    client.connect_async(address.host, address.port, **connect_options(options))


def connect_options(options: SessionOptions, clean: bool = False) -> dict[str, Any]:
    """paho's `connect` arguments: the session kept (or, `clean`, ended) by the broker."""
    kwargs: dict[str, Any] = {"keepalive": options.keepalive_s}
    if options.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's: unannotated
        props.SessionExpiryInterval = 0 if clean else options.session_expiry_s
        kwargs.update(clean_start=clean, properties=props)
    return kwargs


def received_payload(message: mqtt.MQTTMessage) -> bytes:
    """A received message's payload. paho types the field for outgoing messages too (which
    may hold a bytearray); what it reads off the socket is bytes, which this returns as is."""
    return bytes(message.payload)


def end_session(address: BrokerAddress, options: SessionOptions, timeout: float = 5.0) -> bool:
    """Make the broker forget the session of `options.client_id`, with its subscriptions and
    queued messages: a clean connect ends it, and the clean session ends with the disconnect."""
    client = new_client(address, options, clean=True)
    answered = threading.Event()
    outcome: dict[str, bool] = {}

    def on_connect(
        _c: mqtt.Client,
        _u: Any,
        _f: ConnectFlags,
        reason_code: ReasonCode,
        _p: Properties | None,
    ) -> None:
        outcome["ok"] = not reason_code.is_failure
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, **connect_options(options, clean=True))
    except OSError as exc:
        log.warning("session %s not ended: %s", options.client_id, exc)
        return False
    client.loop_start()
    answered.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return outcome.get("ok", False)


def negotiate_protocol(address: BrokerAddress, wanted: str, timeout: float = 5.0) -> str:
    """`wanted`, or 3.1.1 when the broker refuses MQTT v5 (as amqtt does).

    Uses a throwaway clean session, so nothing of the real session is touched.
    """
    if wanted != "5":
        return wanted
    answered = threading.Event()
    outcome: dict[str, bool] = {}

    def on_connect(
        _c: mqtt.Client,
        _u: Any,
        _f: ConnectFlags,
        reason_code: ReasonCode,
        _p: Properties | None,
    ) -> None:
        outcome["refused"] = reason_code.value == UNSUPPORTED_PROTOCOL
        answered.set()

    def on_disconnect(
        _c: mqtt.Client,
        _u: Any,
        _f: DisconnectFlags,
        _reason_code: ReasonCode,
        _p: Properties | None,
    ) -> None:
        outcome.setdefault("refused", True)
        answered.set()

    probe = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if address.username:
        probe.username_pw_set(address.username, address.password)
    if address.tls:
        probe.tls_set(cert_reqs=ssl.CERT_NONE)
        probe.tls_insecure_set(True)
    probe.on_connect = on_connect
    probe.on_disconnect = on_disconnect
    try:
        probe.connect(address.host, address.port, keepalive=10)
    except OSError:
        return wanted  # broker not up yet: keep v5 and let the session's retries wait for it
    probe.loop_start()
    answered.wait(timeout)
    probe.disconnect()
    probe.loop_stop()
    if outcome.get("refused"):
        log.warning("broker %s:%s refused MQTT v5; using 3.1.1", address.host, address.port)
        return "3.1.1"
    return wanted
