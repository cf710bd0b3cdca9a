"""MQTT ingest: the server's broker session. Callbacks only enqueue; the pipeline does the work.

paho runs its own network thread; a callback that did real work there would hold up every
unit's messages, so each one is a queue put and nothing more.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from server.config import Settings
from wire import CHANNELS, Channel, Topics
from wire.mqtt import (
    BrokerAddress,
    SessionOptions,
    connect_persistent,
    negotiate_protocol,
    new_client,
)

log = logging.getLogger(__name__)

URGENT_CHANNELS = (f"/{Channel.ALARM.value}", f"/{Channel.ACK.value}", f"/{Channel.STATE.value}")


@dataclass(frozen=True)
class Inbound:
    topic: str
    payload: bytes
    received_at: float
    mid: int = 0
    qos: int = 0


class BrokerConnected:
    """Put on the queue when the session (re)connects: pending orders go out again."""


class Inbox:
    """Two queues: alarms, acks and state jump ahead of positions and health."""

    def __init__(self) -> None:
        self.urgent: queue.SimpleQueue = queue.SimpleQueue()
        self.bulk: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, item: object, urgent: bool = False) -> None:
        if urgent:
            self.urgent.put(item)
            self.bulk.put(None)  # wakes a worker blocked on the bulk queue
        else:
            self.bulk.put(item)


class MqttIngest:
    def __init__(self, settings: Settings, inbox: Inbox):
        self.settings = settings
        self.inbox = inbox
        self.topics = Topics(settings.topic_root)
        self.address = BrokerAddress.parse(settings.mqtt_url)
        self.client: mqtt.Client | None = None
        self.connected = False

    def start(self) -> None:
        protocol = negotiate_protocol(self.address, self.settings.mqtt_protocol)
        options = SessionOptions(
            client_id=self.settings.mqtt_client_id,
            protocol=protocol,
            session_expiry_s=self.settings.mqtt_session_expiry_s,
        )
        client = new_client(self.address, options, manual_ack=True)
        client.max_inflight_messages_set(self.settings.mqtt_max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        connect_persistent(client, self.address, options)
        client.loop_start()
        log.info(
            "ingest connecting to %s:%s (MQTT %s)", self.address.host, self.address.port, protocol
        )

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        self.connected = False

    def publish(self, topic: str, payload: bytes, channel: Channel) -> None:
        """Queue an outgoing message; paho retries it on reconnect within the session."""
        if self.client is None:
            raise RuntimeError("ingest is not started")
        rule = CHANNELS[channel]
        self.client.publish(topic, payload, qos=rule.qos, retain=rule.retain)

    def ack(self, message: Inbound) -> None:
        """Tell the broker a message is handled (stored, or rejected for good)."""
        if message.qos and self.client is not None:
            self.client.ack(message.mid, message.qos)

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the ingest session: %s", reason_code)
            return
        self.connected = True
        filters = self.topics.upstream_filters()
        client.subscribe([(f, 1) for f in filters])
        log.info("ingest connected; subscribed to %s", ", ".join(filters))
        self.inbox.put(BrokerConnected(), urgent=True)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected = False
        log.warning("ingest lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        self.inbox.put(
            Inbound(topic, message.payload, time.time(), message.mid, message.qos),
            urgent=topic.endswith(URGENT_CHANNELS),
        )
