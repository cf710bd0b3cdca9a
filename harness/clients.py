"""The clients a unit and a dispatcher hold: a unit's MQTT session, an in-car terminal, a
dispatcher's console; each the real client library, as the agent and the pages use them."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import socketio
from paho.mqtt.enums import CallbackAPIVersion

from wire import Channel, Topics, WireError, encode
from wire.screens import NAMESPACE, ScreenEvent, validate_pushed

log = logging.getLogger(__name__)

TOPICS = Topics()


class UnitLink:
    """A unit's MQTT session as its agent would hold it, for driving the server directly."""

    def __init__(self, port: int, unit_id: str):
        self.unit_id = unit_id
        self.orders: list[dict] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{unit_id}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, m: self.orders.append(json.loads(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(TOPICS.unit(unit_id, Channel.ORDERS), qos=1)
        self.client.loop_start()

    def send(self, channel: Channel, message: dict | bytes, topic_unit: str | None = None) -> None:
        payload = message if isinstance(message, bytes) else encode(channel, message)
        qos = 0 if channel is Channel.HEALTH else 1
        self.client.publish(
            TOPICS.unit(topic_unit or self.unit_id, channel),
            payload,
            qos=qos,
            retain=channel is Channel.STATE,
        ).wait_for_publish(5)

    def fix(self, lat: float, lon: float, ts: float | None = None) -> dict:
        fix = {"ts": ts or time.time(), "lat": lat, "lon": lon}
        self.send(Channel.POSITION, fix)
        return fix

    def online(self) -> None:
        self.send(Channel.STATE, {"online": True, "ts": time.time()})

    def panic(self, alarm_id: str | None = None) -> str:
        alarm_id = alarm_id or uuid.uuid4().hex
        self.send(Channel.ALARM, {"alarm_id": alarm_id, "ts": time.time(), "kind": "panic"})
        return alarm_id

    def ack(self, order_id: str, status: str) -> None:
        self.send(Channel.ACK, {"order_id": order_id, "ts": time.time(), "status": status})

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# what a terminal is handed with each order: the order, and when it came (perf_counter and
# wall clock, read before anything else is done with it)
OrderHandler = Callable[[dict[str, Any], float, float], None]


class Terminal:
    """A unit's in-car terminal: a real python-socketio client on `/terminal`.

    Every event the server pushes is checked against the wire contract (`wire.screens`): one
    off it is logged and kept in `off_contract`, and `close()` fails on it. Each order is
    kept in `orders` (`received` is set at the first), confirmed by the event's callback,
    and handed to `on_order`, which runs on the client's only reader thread, so it must not
    wait for the server. A real screen sends `sync` after connecting; `sync=False` leaves
    that out where only orders sent later count.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        on_order: OrderHandler | None = None,
        sync: bool = True,
        websocket_only: bool = False,
        connect_timeout: float = 10.0,
    ):
        self.orders: list[dict[str, Any]] = []
        self.off_contract: list[str] = []
        self.received = threading.Event()
        self.on_order = on_order
        self.sio = socketio.Client(reconnection=False)
        self.sio.on(ScreenEvent.ORDER.value, self._on_order, namespace=NAMESPACE)
        # a `call` is only checked: a test reads the call from the server
        self.sio.on(ScreenEvent.CALL.value, self._check_call, namespace=NAMESPACE)
        self.sio.on("*", self._on_unknown, namespace=NAMESPACE)
        self.sio.connect(
            url,
            namespaces=[NAMESPACE],
            auth={"token": token},
            transports=["websocket"] if websocket_only else None,
            wait_timeout=connect_timeout,
        )
        if sync:
            self.call(ScreenEvent.SYNC.value)

    def _on_order(self, order: dict[str, Any]) -> bool | None:
        at, wall = time.perf_counter(), time.time()
        if not self._on_contract(ScreenEvent.ORDER, order):
            return None
        self.orders.append(order)
        self.received.set()
        if self.on_order is not None:
            self.on_order(order, at, wall)
        return True  # the callback: delivered

    def _check_call(self, call: dict[str, Any]) -> None:
        self._on_contract(ScreenEvent.CALL, call)

    def _on_unknown(self, event: str, *_data: Any) -> None:
        self._off_contract(f"an event the contract does not know: {event!r}")

    def _on_contract(self, event: ScreenEvent, message: Any) -> bool:
        try:
            validate_pushed(event, message)
        except WireError as exc:
            self._off_contract(str(exc))
            return False
        return True

    def _off_contract(self, problem: str) -> None:
        log.error("the server pushed to a terminal off the wire contract: %s", problem)
        self.off_contract.append(problem)

    def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        """Send `event` and wait for the server's answer."""
        return self.sio.call(event, data, namespace=NAMESPACE, timeout=timeout)

    def round_trip(self, event: str, data: Any = None) -> float:
        """Seconds from sending `event` to the server's answer."""
        start = time.perf_counter()
        self.call(event, data)
        return time.perf_counter() - start

    def ack(self, order_id: str, status: str, **extra: Any) -> dict:
        return self.call(ScreenEvent.ACK.value, {"order_id": order_id, "status": status, **extra})

    def ack_then(self, order_id: str, status: str, answered: Callable[..., None]) -> None:
        """The same ack without waiting: `answered(answer)` runs on the reader thread."""
        self.sio.emit(
            ScreenEvent.ACK.value,
            {"order_id": order_id, "status": status},
            namespace=NAMESPACE,
            callback=answered,
        )

    def close(self) -> None:
        self.sio.disconnect()
        if self.off_contract:
            raise AssertionError(f"pushed off the wire contract: {self.off_contract}")


class Console:
    """A dispatcher's console: a real python-socketio client on `/console`, keeping events."""

    def __init__(self, server_url: str, token: str):
        self.events: list[tuple[str, Any]] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", self._keep, namespace="/console")
        self.sio.connect(
            server_url, namespaces=["/console"], auth={"token": token}, wait_timeout=10
        )

    def _keep(self, event: str, data: Any) -> None:
        """Changes close together come as one `changes` event; kept one by one."""
        self.events.extend(map(tuple, data) if event == "changes" else [(event, data)])

    def of(self, event: str) -> list[Any]:
        return [data for name, data in list(self.events) if name == event]

    def close(self) -> None:
        self.sio.disconnect()
