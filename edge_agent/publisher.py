"""The MQTT transport: drains the outbox to the broker and hands incoming orders on.

paho's network thread only enqueues events; one drain thread owns the in-flight table
(mid -> outbox row) and is the only caller of `publish`, so no lock is ever held across
paho's own locks. A message's rows are deleted when its PUBACK arrives. On every (re)connect
paho's in-memory copies are dropped and whatever was in flight is sent again from the outbox:
the outbox is the one source of truth, and the server drops duplicates by message id.

A backlog of positions (after a link loss) goes out as `{"batch": [fix, ...]}` messages,
one PUBACK per batch: an hour of 1 Hz fixes is 18 messages, not 3,600 round trips.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.config import Settings
from edge_agent.outbox import PRIORITY, Outbox, Row, Uplink
from mqtt_link import (
    UNSUPPORTED_PROTOCOL,
    BrokerAddress,
    SessionOptions,
    connect_persistent,
    negotiate_protocol,
    new_client,
    received_payload,
)
from wire import Channel, WireError, decode

log = logging.getLogger(__name__)

_STOP_FLUSH_S = 2.0  # how long stop() waits for the "offline" state to reach the broker
_POSITION = PRIORITY[Channel.POSITION]
# an alarm or an ack with no receipt this long after its PUBACK goes out again
_RESENT_WITHOUT_RECEIPT = (PRIORITY[Channel.ALARM], PRIORITY[Channel.ACK])
_DOWNSTREAM = (Channel.ORDERS, Channel.RECEIPT, Channel.CALL)


def plan(rows: list[Row], room: int, batch_size: int) -> list[list[Row]]:
    """Rows in drain order grouped into at most `room` messages: every alarm, ack, state and
    health alone; consecutive positions on one topic together, up to `batch_size` a message."""
    messages: list[list[Row]] = []
    for row in rows:
        last = messages[-1] if messages else None
        if (
            last is not None
            and row.priority == _POSITION
            and last[0].priority == _POSITION
            and last[0].topic == row.topic
            and len(last) < batch_size
        ):
            last.append(row)
        elif len(messages) < room:
            messages.append([row])
        else:
            break
    return messages


def payload(message: list[Row]) -> bytes:
    """One row's payload, or a batch of fixes built from payloads validated when queued."""
    if len(message) == 1:
        return message[0].payload
    return b'{"batch":[' + b",".join(row.payload for row in message) + b"]}"


class Publisher:
    """One persistent MQTT session for the unit: QoS 1, retained state with a will."""

    def __init__(
        self,
        settings: Settings,
        uplink: Uplink,
        version: str,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.clock = clock  # what state messages are stamped with
        self.uplink = uplink
        self.outbox: Outbox = uplink.outbox
        self.version = version
        self.on_order: Callable[[bytes], None] | None = None
        self.on_receipt: Callable[[dict[str, Any]], None] | None = None  # what the server stored
        self.on_call: Callable[[dict[str, Any]], None] | None = None  # how the unit's call goes
        self.connected = False
        self._resend_checked = time.monotonic()
        self.protocol = settings.mqtt.protocol
        self._address = BrokerAddress.parse(settings.mqtt.url)
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        # paho mid -> the outbox rows it carries; drain thread only
        self._inflight: dict[int, tuple[int, ...]] = {}
        # Positions go out in id order and new rows get higher ids, so the position rows in
        # flight are exactly those up to this id: no list of thousands of ids to skip.
        self._positions_sent = 0
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None

    def _topic(self, channel: Channel) -> str:
        return self.uplink.topics.unit(self.settings.unit.id, channel)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.protocol = negotiate_protocol(self._address, self.protocol)
        self._client = self._new_client()
        self.outbox.on_put = self.wake
        self._thread = threading.Thread(target=self._drain, name="mqtt-drain", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Say "offline" (briefly waiting for it to go out), then leave cleanly (no will)."""
        row = self.uplink.send(Channel.STATE, {"online": False, "ts": self.clock()})
        deadline = time.monotonic() + _STOP_FLUSH_S
        while self.connected and self.outbox.contains(row) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.outbox.on_put = None
        self._events.put(("stop", None))
        if self._thread:
            self._thread.join(timeout=5)
        self._close_client()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Something new is in the outbox."""
        self._events.put(("wake", None))

    def _new_client(self) -> mqtt.Client:
        mqtt_settings = self.settings.mqtt
        options = SessionOptions(
            client_id=self.settings.client_id,
            protocol=self.protocol,
            session_expiry_s=mqtt_settings.session_expiry_s,
            keepalive_s=mqtt_settings.keepalive_s,
            ca_file=mqtt_settings.ca_file or None,
            ca_pem=mqtt_settings.ca_pem or None,
        )
        client = new_client(self._address, options)
        client.max_inflight_messages_set(mqtt_settings.max_inflight)
        self._jitter_reconnect(client)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        connect_persistent(client, self._address, options)
        client.loop_start()
        return client

    def _jitter_reconnect(self, client: mqtt.Client) -> None:
        """Waits between attempts that differ from unit to unit: after a broker restart the
        whole fleet would otherwise knock at the same instants (capped at reconnect_max_s)."""
        cap = self.settings.mqtt.reconnect_max_s
        client.reconnect_delay_set(
            # paho annotates whole seconds; its reconnect timer takes any number
            min_delay=min(cap, random.uniform(0.5, 1.5)),  # type: ignore[arg-type]
            max_delay=cap * random.uniform(0.6, 0.95),  # type: ignore[arg-type]
        )

    def _close_client(self) -> None:
        if self._client is None:
            return
        self._client.disconnect()
        self._client.loop_stop()
        self._client = None
        self.connected = False

    # -- paho's thread: enqueue, nothing else ---------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        # The will's time is refreshed before each attempt: it says when the unit was last seen.
        will = b'{"online":false,"ts":%.3f}' % self.clock()
        client.will_set(self._topic(Channel.STATE), will, qos=1, retain=True)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker %s refused the connection: %s", self._address.host, reason)
            if reason.value == UNSUPPORTED_PROTOCOL and self.protocol == "5":
                self._events.put(("v5_refused", None))
            return
        # Before paho resends its in-memory copies (right after this callback): the drain
        # thread resends from the outbox instead, under fresh message ids.
        client.drop_out_messages()
        client.subscribe(
            [(self._topic(channel), 1) for channel in _DOWNSTREAM]
            + [(self.uplink.topics.to_all(Channel.SERVER), 1)]
        )
        self._events.put(("up", flags.session_present))

    def _on_disconnect(self, c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._jitter_reconnect(c)
        self._events.put(("down", reason))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._events.put(("acked", mid))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Handled here, not queued: paho sends the PUBACK after this returns, so an order is
        # acknowledged to the broker only once its "received" ack is safe in the outbox.
        channel = message.topic.rsplit("/", 1)[-1]
        if channel == Channel.ORDERS and self.on_order:
            self.on_order(received_payload(message))
        elif channel in (Channel.RECEIPT, Channel.CALL, Channel.SERVER):
            self._server_says(Channel(channel), received_payload(message))

    def _server_says(self, channel: Channel, payload: bytes) -> None:
        try:
            message = decode(channel, payload)
        except WireError as exc:
            log.warning("ignored an invalid %s from the server: %s", channel.value, exc)
            return
        if channel is Channel.SERVER:
            if not message["kept"]:  # the broker lost the server's queue, and ours with it
                self._events.put(("server_lost_queue", None))
            return
        if channel is Channel.RECEIPT:
            self.outbox.confirm(message)  # in the server's store: it may leave the unit
        handler = self.on_receipt if channel is Channel.RECEIPT else self.on_call
        if handler:
            handler(message)

    # -- the drain thread -----------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            try:
                kind, arg = self._events.get(timeout=1.0)
            except queue.Empty:
                kind, arg = "wake", None  # a periodic look, in case a wake-up was missed
            if kind == "stop":
                return
            self._handle(kind, arg)
            if self.connected:
                self._resend_unconfirmed()
                self._fill_window()

    def _resend_unconfirmed(self) -> None:
        """Alarms and acks the broker took but the server never confirmed go out again."""
        now = time.monotonic()
        timeout = self.settings.outbox.receipt_timeout_s
        if now - self._resend_checked < min(timeout, 5.0):
            return
        self._resend_checked = now
        again = self.outbox.send_again(time.time() - timeout, _RESENT_WITHOUT_RECEIPT)
        if again:
            log.warning("%d alarms or acks had no receipt in %.0f s: sending again", again, timeout)

    def _handle(self, kind: str, arg: Any) -> None:
        if kind == "acked":
            row_ids = self._inflight.pop(arg, None)
            if row_ids is not None:
                self.outbox.acknowledged(*row_ids)
        elif kind == "up":
            log.info(
                "connected to %s (MQTT %s, session present: %s)",
                self._address.host,
                self.protocol,
                arg,
            )
            self._inflight.clear()
            self._positions_sent = 0
            # what the broker had but the server has not confirmed: the broker may have
            # restarted and lost it, so it goes again (the server drops repeats)
            again = self.outbox.send_again(time.time())
            if again:
                log.info("sending %d unconfirmed messages again", again)
            self.connected = True
            self.uplink.send(
                Channel.STATE,
                {
                    "online": True,
                    "ts": self.clock(),
                    "kind": self.settings.unit.kind,
                    "version": self.version,
                },
            )
        elif kind == "server_lost_queue":
            again = self.outbox.send_again(time.time())
            self._inflight.clear()  # what is in flight too: it went into a queue now gone
            self._positions_sent = 0
            log.warning("the server's queue was lost: sending %d unconfirmed messages again", again)
        elif kind == "down":
            if self.connected:
                log.warning("disconnected from %s: %s", self._address.host, arg)
            self.connected = False
        elif kind == "v5_refused":
            log.warning("broker %s refused MQTT v5; reconnecting with 3.1.1", self._address.host)
            self._close_client()
            self.protocol = "3.1.1"
            self._client = self._new_client()

    def _fill_window(self) -> None:
        """Publish the next messages in drain order until max_inflight are unacknowledged."""
        room = self.settings.mqtt.max_inflight - len(self._inflight)
        if room <= 0 or self._client is None:
            return
        batch_size = self.settings.outbox.batch_size
        singles = [ids[0] for ids in self._inflight.values() if len(ids) == 1]
        rows = self.outbox.peek(room * batch_size, singles, self._positions_sent)
        for message in plan(rows, room, batch_size):
            first = message[0]
            info = self._client.publish(
                first.topic, payload(message), qos=first.qos, retain=first.retain
            )
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                return  # the link just went; the rows stay in the outbox for the next connect
            self._inflight[info.mid] = tuple(row.id for row in message)
            if first.priority == _POSITION:
                self._positions_sent = max(self._positions_sent, message[-1].id)
