"""MQTT ingest: the server's broker sessions. Callbacks only enqueue; the pipeline does the work.

Two persistent sessions: one for alarms, acks and unit state (and the orders the server
sends), one for positions and health. A broker delivers a session's messages in order, so
with one session an alarm would wait behind every fix queued ahead of it; with two it never
does. paho runs each session's network thread; a callback that did real work there would
hold up every unit's messages, so each one is a queue put and nothing more.

Several instances (FIELDLINK_REDIS_URL) take the units' messages as members of one MQTT
shared subscription, so each message goes to one of them. A member's persistent session
keeps getting its share while the member is down; `Drain` is how another instance takes
that share over.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from mqtt_link import (
    BrokerAddress,
    SessionOptions,
    connect_options,
    connect_persistent,
    end_session,
    negotiate_protocol,
    new_client,
    received_payload,
)
from server.config import Settings
from server.ingest import owntracks
from server.runtime import clock
from wire import CHANNELS, Channel, Topics, encode

log = logging.getLogger(__name__)

URGENT = (Channel.ALARM, Channel.ACK, Channel.STATE)
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.5, 1.0  # back within ~1 s of the broker's return
BULK = (Channel.POSITION, Channel.HEALTH)


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    received_at: float
    mid: int = 0
    qos: int = 0
    session: mqtt.Client | None = None
    acked: Callable[[], None] | None = None  # told when the broker has been acknowledged


class BrokerConnected:
    """Put on the queue when the urgent session (re)connects: pending orders go out again."""


class Inbox:
    """Two queues: alarms, acks, state and commands jump ahead of positions and health."""

    def __init__(self) -> None:
        self.urgent: queue.SimpleQueue = queue.SimpleQueue()
        self.bulk: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, item: object, urgent: bool = False) -> None:
        if urgent:
            self.urgent.put(item)
            self.bulk.put(None)  # wakes a worker blocked on the bulk queue
        else:
            self.bulk.put(item)


class Session:
    """One persistent broker session subscribed to some upstream channels."""

    def __init__(self, name: str, channels: tuple[Channel, ...], ingest: MqttIngest):
        self.name = name
        self.filters = ingest.filters(channels)
        self.urgent = channels == URGENT
        self.ingest = ingest
        self.connected = False
        self.client: mqtt.Client | None = None

    def start(self, address: BrokerAddress, options: SessionOptions, max_inflight: int) -> None:
        client = new_client(address, options, manual_ack=True)
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)
        # two sessions, not a fleet: no need to back off far, and an alarm waits for it (paho
        # annotates whole seconds; its reconnect timer takes any number)
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client
        connect_persistent(client, address, options)
        client.loop_start()

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        self.connected = False

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the %s session: %s", self.name, reason_code)
            return
        filters = [(f, 1) for f in self.filters]
        if self.urgent:
            filters.append((self.ingest.claim_topic, 1))
        client.subscribe(filters)
        if self.urgent:  # after subscribing: the broker hands over the claim it kept first
            self.ingest.claim.publish(client)
        log.info("%s session connected; subscribing to %s", self.name, ", ".join(self.filters))
        self.ingest.announce(client, bool(flags.session_present))
        if self.urgent:
            self.ingest.inbox.put(BrokerConnected(), urgent=True)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        """Connected counts from here: before the broker took the subscriptions, a message
        for a shared subscription could still go to the other instances only."""
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("broker refused the %s session's subscriptions: %s", self.name, refused)
            return
        self.connected = True

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected = False
        log.warning("%s session lost the broker (%s); reconnecting", self.name, reason_code)

    def _on_message(self, client, _userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.ingest.claim_topic:
            if message.qos:
                client.ack(message.mid, message.qos)
            self.ingest.claim.heard(received_payload(message))
            return
        self.ingest.inbox.put(
            Inbound(
                message.topic,
                received_payload(message),
                clock.now(),
                message.mid,
                message.qos,
                client,
            ),
            urgent=self.urgent,
        )


class ClientIdClaim:
    """This process's claim on its client id, kept on the broker as a retained message.

    Two processes with the same client id would take each other's broker sessions for ever,
    each losing the other's share of the units' messages. Each publishes its claim (with
    when it started, and when it said so) every time it connects, right after subscribing
    to the claims: the broker keeps the last one and hands it to the next to subscribe. A
    claim of another process that started earlier and has spoken since this one started
    is a live twin: this one gives up (`on_conflict`). A claim left by a process that died
    is never renewed after this one starts, so a restart after a crash is not refused.
    """

    def __init__(self, topic: str, on_conflict: Callable[[str], None]):
        self.topic = topic
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self.on_conflict = on_conflict

    def publish(self, client: mqtt.Client) -> None:
        mine = {"token": self.token, "started": self.started, "seen": time.time()}
        client.publish(self.topic, json.dumps(mine).encode(), qos=1, retain=True)

    def heard(self, payload: bytes) -> None:
        try:
            claim = json.loads(payload)
            theirs, started, seen = (
                str(claim["token"]),
                float(claim["started"]),
                float(claim["seen"]),
            )
        except (ValueError, TypeError, KeyError):
            return
        if theirs == self.token or seen < self.started:
            return  # ours, or left by a process gone before this one started
        if (started, theirs) < (self.started, self.token):  # it ran first: this one gives up
            self.on_conflict(self.topic.rsplit("/", 1)[-1])
        else:
            log.error("another process claims our client id; it started later and gives up")


class Drain:
    """A dead instance's broker session, taken over until what the broker kept for it is handled.

    The broker goes on assigning shares of a shared subscription to a member whose session
    persists, also while the member is disconnected: they wait in that session until its
    client id connects again. So a surviving instance connects with that client id,
    unsubscribes at once (no new share comes to it), hands every kept message to its own
    worker, and once all are acknowledged ends the session, so that the broker stops
    counting it as a member. If the dead instance comes back meanwhile, it takes its session
    back (the broker disconnects the drain) and gets the rest itself.
    """

    def __init__(self, ingest: MqttIngest, options: SessionOptions, channels: tuple, urgent: bool):
        self.ingest = ingest
        self.options = options
        self.filters = ingest.filters(channels)
        self.urgent = urgent
        self.lock = threading.Lock()
        self.pending = 0
        self.taken = 0
        self.last = time.monotonic()

    def run(self, still_gone: Callable[[], bool], idle_s: float, give_up_s: float) -> bool:
        """True once the session is drained and ended; False if not (try again later)."""
        address = self.ingest.address
        client = new_client(address, self.options, manual_ack=True)
        client.on_message = self._on_message
        try:
            client.connect(address.host, address.port, **connect_options(self.options))
        except OSError as exc:
            log.warning("drain of %s: %s", self.options.client_id, exc)
            return False
        client.unsubscribe(self.filters)
        started = self.last = time.monotonic()
        drained = False
        while time.monotonic() - started < give_up_s:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                log.info("drain of %s: the session was taken back", self.options.client_id)
                return False
            with self.lock:
                drained = not self.pending and time.monotonic() - self.last >= idle_s
            if drained:
                break
        client.disconnect()
        if not drained:
            log.warning("drain of %s: messages not handled in time", self.options.client_id)
            return False
        log.info("drained %d messages from %s", self.taken, self.options.client_id)
        if not still_gone():
            return False  # back meanwhile: the session is its own again
        return end_session(address, self.options)

    def _on_message(self, client, _userdata, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.last = time.monotonic()
            if message.qos:
                self.pending += 1
                self.taken += 1
        self.ingest.inbox.put(
            Inbound(
                message.topic,
                received_payload(message),
                clock.now(),
                message.mid,
                message.qos,
                client,
                self._acked if message.qos else None,
            ),
            urgent=self.urgent,
        )

    def _acked(self) -> None:
        with self.lock:
            self.pending -= 1
            self.last = time.monotonic()


class MqttIngest:
    def __init__(
        self,
        settings: Settings,
        inbox: Inbox,
        on_client_id_taken: Callable[[str], None] = lambda _client_id: None,
    ):
        self.settings = settings
        self.inbox = inbox
        self.topics = Topics(settings.topic_root)
        self.address = BrokerAddress.parse(settings.mqtt_url)
        # another process with our client id: the one that started later gives up
        self.claim_topic = f"{settings.topic_root}/instances/{settings.mqtt_client_id}"
        self.claim = ClientIdClaim(self.claim_topic, on_client_id_taken)
        # one of several instances: the units' messages are shared among them
        self.share_group = settings.mqtt_share_group if settings.redis_url else ""
        self.urgent = Session("urgent", URGENT, self)
        self.bulk = Session("bulk", BULK, self)
        self.protocols = {"urgent": settings.mqtt_protocol, "bulk": settings.mqtt_bulk_protocol}

    def filters(self, channels: tuple[Channel, ...]) -> list[str]:
        plain = self.topics.upstream_filters(channels)
        if channels == BULK:  # phones running OwnTracks report on its own topics
            plain = [*plain, *owntracks.MQTT_FILTERS]
        if not self.share_group:
            return plain
        return [f"$share/{self.share_group}/{f}" for f in plain]

    @property
    def connected(self) -> bool:
        return self.urgent.connected and self.bulk.connected

    def client_id(self, session: str) -> str:
        return self.settings.mqtt_client_id + ("-urgent" if session == "urgent" else "")

    def start(self) -> None:
        protocol = negotiate_protocol(self.address, self.settings.mqtt_protocol)
        bulk_protocol = negotiate_protocol(self.address, self.settings.mqtt_bulk_protocol)
        self.protocols = {"urgent": protocol, "bulk": bulk_protocol}
        if self.share_group and protocol != "5":
            log.error(
                "the broker refused MQTT v5: it may not know shared subscriptions, and then "
                "every instance would handle every message; use mosquitto 2 for several "
                "instances"
            )
        for session, version in ((self.urgent, protocol), (self.bulk, bulk_protocol)):
            options = SessionOptions(
                client_id=self.client_id(session.name),
                protocol=version,
                session_expiry_s=self.settings.mqtt_session_expiry_s,
            )
            session.start(self.address, options, self.settings.mqtt_max_inflight)
        log.info(
            "ingest connecting to %s:%s (MQTT %s)", self.address.host, self.address.port, protocol
        )

    def stop(self) -> None:
        self.bulk.stop()
        self.urgent.stop()

    def announce(self, client: mqtt.Client, kept: bool) -> None:
        """Tell every unit a session of ours is connected, and whether the broker had kept it:
        if not, what they sent while it was gone is lost with it, and they send again what
        the server has not confirmed."""
        if not kept:
            log.warning("the broker had no session of ours: units send again what is unconfirmed")
        message = {"online": True, "ts": clock.now(), "kept": kept}
        rule = CHANNELS[Channel.SERVER]
        client.publish(
            self.topics.to_all(Channel.SERVER), encode(Channel.SERVER, message), qos=rule.qos
        )

    def publish(self, topic: str, payload: bytes, channel: Channel) -> None:
        """Queue an outgoing message on the urgent session; paho retries it on reconnect."""
        self._publish(self.urgent, topic, payload, channel)

    def publish_bulk(self, topic: str, payload: bytes, channel: Channel) -> None:
        """On the positions' session: thousands at a time (the units' position receipts)
        must not queue ahead of an order or an alarm's receipt."""
        self._publish(self.bulk, topic, payload, channel)

    @staticmethod
    def _publish(session: Session, topic: str, payload: bytes, channel: Channel) -> None:
        if session.client is None:
            raise RuntimeError("ingest is not started")
        rule = CHANNELS[channel]
        session.client.publish(topic, payload, qos=rule.qos, retain=rule.retain)

    def drain(
        self,
        instance_id: str,
        still_gone: Callable[[], bool],
        idle_s: float = 1.0,
        give_up_s: float = 60.0,
    ) -> bool:
        """Take over what the broker kept for a dead instance's two sessions (see `Drain`)."""
        drained = True
        for suffix, channels, urgent, protocol in (
            ("-urgent", URGENT, True, self.protocols["urgent"]),
            ("", BULK, False, self.protocols["bulk"]),
        ):
            options = SessionOptions(
                client_id=instance_id + suffix,
                protocol=protocol,
                session_expiry_s=self.settings.mqtt_session_expiry_s,
            )
            drain = Drain(self, options, channels, urgent)
            drained = drain.run(still_gone, idle_s, give_up_s) and drained
        return drained

    @staticmethod
    def ack(message: Inbound) -> None:
        """Tell the broker a message is handled (stored, or rejected for good)."""
        if message.qos and message.session is not None:
            message.session.ack(message.mid, message.qos)
            if message.acked is not None:
                message.acked()
