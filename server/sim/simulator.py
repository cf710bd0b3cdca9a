"""A simulated fleet that talks the real protocol: patrol cars, guard kiosks and their officers.

Cars drive a Manhattan-style street lattice around a city centre; every unit publishes its
fixes and its retained online state over MQTT (with a will), kiosks raise panics, and each
car's officer answers orders on the `/terminal` Socket.IO namespace as a terminal would.

The decisions (where a car drives next, when it has arrived, what the officer answers and
when) are pure functions over plain data at the top of this module; the classes below them
only do the I/O.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import selectors
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import paho.mqtt.client as mqtt
import socketio

from geodesy import M_PER_DEG_LAT, distance_m
from mqtt_link import (
    BrokerAddress,
    SessionOptions,
    connect_persistent,
    new_client,
    received_payload,
)
from server.notify import TERMINAL_NS
from server.rules.geo import GridShape
from server.runtime.clock import WALL, Clock
from wire import CHANNELS, Channel, Topics, WireError, decode, encode

log = logging.getLogger(__name__)

Node = tuple[int, int]  # an intersection: (column west→east, row south→north)

MIN_SPEED_MS, MAX_SPEED_MS = 8.0, 14.0  # 29-50 km/h: city traffic
STRAIGHT_ON = 0.6  # a patrolling car mostly keeps to its street
ARRIVAL_RADIUS_M = 30.0
DECLINE_SHARE = 0.1
DECLINE_REASONS = (
    "Handling a traffic stop",
    "Vehicle fault, heading to the depot",
    "Already detaining a suspect",
)
POST_SPOTS = ("School gate", "Hospital", "Shopping mall", "Bank branch", "Square", "Station")


# -- the city ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Zone:
    """A box of intersections, corners included: a response grid, or one goal node."""

    lo: Node
    hi: Node

    @classmethod
    def at(cls, node: Node) -> Zone:
        return cls(node, node)

    def contains(self, node: Node) -> bool:
        return self.lo[0] <= node[0] <= self.hi[0] and self.lo[1] <= node[1] <= self.hi[1]

    def distance(self, node: Node) -> int:
        """Blocks to drive from `node` into the zone."""
        dx = max(self.lo[0] - node[0], 0, node[0] - self.hi[0])
        dy = max(self.lo[1] - node[1], 0, node[1] - self.hi[1])
        return dx + dy


@dataclass(frozen=True)
class City:
    """A street lattice centred on (lat, lon), cut into square response grids of `grid_blocks`
    blocks, `cols` grids across, numbered row by row from the north-west; the last grid takes
    the rest of its row. Default: Jining, four grids, 4 km across."""

    lat: float = 35.405
    lon: float = 116.587
    block_m: float = 200.0
    grid_blocks: int = 10
    grids: int = 4
    cols: int = 2

    @classmethod
    def of_grids(cls, grids: int, grid_blocks: int = 6, **where: float) -> City:
        """A city of `grids` grids laid out as near a square as they go."""
        return cls(grids=grids, cols=math.ceil(math.sqrt(grids)), grid_blocks=grid_blocks, **where)

    @property
    def rows(self) -> int:
        return math.ceil(self.grids / self.cols)

    @property
    def blocks_x(self) -> int:
        return self.cols * self.grid_blocks

    @property
    def blocks_y(self) -> int:
        return self.rows * self.grid_blocks

    def latlon(self, x: float, y: float) -> tuple[float, float]:
        """(lat, lon) of a point `x` m east and `y` m north of the south-west corner."""
        lat = self.lat + (y - self.blocks_y * self.block_m / 2) / M_PER_DEG_LAT
        lon = self.lon + (x - self.blocks_x * self.block_m / 2) / self._m_per_deg_lon
        return lat, lon

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        """Metres east and north of the south-west corner: the inverse of `latlon`."""
        x = (lon - self.lon) * self._m_per_deg_lon + self.blocks_x * self.block_m / 2
        y = (lat - self.lat) * M_PER_DEG_LAT + self.blocks_y * self.block_m / 2
        return x, y

    @property
    def _m_per_deg_lon(self) -> float:
        return M_PER_DEG_LAT * math.cos(math.radians(self.lat))

    def xy(self, node: Node) -> tuple[float, float]:
        return node[0] * self.block_m, node[1] * self.block_m

    def nearest_node(self, lat: float, lon: float) -> Node:
        x, y = self.to_xy(lat, lon)
        return (
            min(max(round(x / self.block_m), 0), self.blocks_x),
            min(max(round(y / self.block_m), 0), self.blocks_y),
        )

    def neighbours(self, node: Node) -> list[Node]:
        i, j = node
        steps = ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1))
        return [(a, b) for a, b in steps if 0 <= a <= self.blocks_x and 0 <= b <= self.blocks_y]

    def zones(self) -> dict[str, Zone]:
        """The response grids by name (G1.., or G01.. past nine)."""
        width, n = len(str(self.grids)), self.grid_blocks
        out = {}
        for k in range(self.grids):
            row, col = divmod(k, self.cols)
            top = self.blocks_y - row * n
            right = self.blocks_x if k == self.grids - 1 else (col + 1) * n
            out[f"G{k + 1:0{width}d}"] = Zone((col * n, top - n), (right, top))
        return out

    def grid_of(self, node: Node) -> str:
        return next(name for name, zone in self.zones().items() if zone.contains(node))

    def grid_at(self, x: float, y: float) -> str:
        """The grid holding a point `x`, `y` m from the south-west corner (off the borders)."""
        b = self.block_m
        return next(
            name
            for name, z in self.zones().items()
            if z.lo[0] * b <= x <= z.hi[0] * b and z.lo[1] * b <= y <= z.hi[1] * b
        )

    def grid_shapes(self) -> list[GridShape]:
        """The grids as polygons, reaching a block past the city's edge (the kiosks)."""
        shapes = []
        for name, zone in self.zones().items():
            x0, y0, x1, y1 = (
                self.block_m * (v + pad)
                for v, pad in zip((*zone.lo, *zone.hi), self._pads(zone), strict=True)
            )
            corners = [self.latlon(x, y)[::-1] for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
            ring = [list(c) for c in (*corners, corners[0])]
            shapes.append(
                GridShape(name, f"Grid {name}", {"type": "Polygon", "coordinates": [ring]})
            )
        return shapes

    def _pads(self, zone: Zone) -> tuple[int, int, int, int]:
        """One block outwards on the sides that are the city's edge."""
        lo_x, lo_y = zone.lo
        hi_x, hi_y = zone.hi
        return (-(lo_x == 0), -(lo_y == 0), int(hi_x == self.blocks_x), int(hi_y == self.blocks_y))


# -- driving ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Car:
    """A car on the block from `came_from` to `heading_to`, `along_m` into it."""

    came_from: Node
    heading_to: Node
    along_m: float
    speed: float  # m/s; 0 while parked at `heading_to`


def street_speed(rng: random.Random) -> float:
    return rng.uniform(MIN_SPEED_MS, MAX_SPEED_MS)


def car_xy(city: City, car: Car) -> tuple[float, float]:
    (x0, y0), (x1, y1) = city.xy(car.came_from), city.xy(car.heading_to)
    share = car.along_m / city.block_m
    return x0 + (x1 - x0) * share, y0 + (y1 - y0) * share


def heading_deg(a: Node, b: Node) -> float:
    """Compass heading from intersection `a` to `b` (north 0, east 90)."""
    return math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360


def next_street(city: City, came_from: Node, at: Node, zone: Zone, rng: random.Random) -> Node:
    """The intersection to drive to from `at`: inside `zone` patrol, outside head for it.

    Patrolling, a car mostly drives straight on, turns now and then and makes a U-turn
    only where the zone's edge leaves no other way.
    """
    options = city.neighbours(at)
    if not zone.contains(at):
        return rng.choice([n for n in options if zone.distance(n) < zone.distance(at)])
    inside = [n for n in options if zone.contains(n)]
    ahead = (2 * at[0] - came_from[0], 2 * at[1] - came_from[1])
    if ahead in inside and rng.random() < STRAIGHT_ON:
        return ahead
    return rng.choice([n for n in inside if n != came_from] or inside)


def drive(
    city: City, car: Car, dt: float, zone: Zone, rng: random.Random, park: bool = False
) -> Car:
    """The car `dt` seconds on; with `park`, it stops at the first intersection in `zone`.

    Each new block gets its own speed, as traffic would give it.
    """
    if car.speed == 0:
        return car
    left = car.speed * dt
    while left >= city.block_m - car.along_m:
        left -= city.block_m - car.along_m
        at = car.heading_to
        if park and zone.contains(at):
            return replace(car, along_m=city.block_m, speed=0.0)
        ahead = next_street(city, car.came_from, at, zone, rng)
        car = Car(at, ahead, 0.0, street_speed(rng))
    return replace(car, along_m=car.along_m + left)


def arrived(city: City, car: Car, lat: float, lon: float, goal: Node) -> bool:
    """On scene: within ARRIVAL_RADIUS_M of the place, or parked as near as streets go."""
    if car.speed == 0 and car.heading_to == goal:
        return True
    return distance_m(*city.latlon(*car_xy(city, car)), lat, lon) <= ARRIVAL_RADIUS_M


def car_fix(city: City, car: Car, ts: float) -> dict[str, Any]:
    lat, lon = city.latlon(*car_xy(city, car))
    heading = heading_deg(car.came_from, car.heading_to)
    return {"ts": ts, "lat": lat, "lon": lon, "speed": car.speed, "heading": heading, "acc": 5.0}


def post_xy(city: City, node: Node) -> tuple[float, float]:
    """A guard kiosk stands on the north-east corner of an intersection, ~11 m from its centre."""
    x, y = city.xy(node)
    return x + 8, y + 8


def post_location(city: City, node: Node) -> tuple[float, float]:
    return city.latlon(*post_xy(city, node))


# -- the officer ------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """An order an officer holds; `status` is the last one acknowledged."""

    order_id: str
    lat: float
    lon: float
    goal: Node
    status: str  # received, accepted, en_route, on_scene
    due: float  # when the next timed step comes
    decline_reason: str = ""
    scene_s: float = 60.0


def take_order(
    city: City,
    order: dict[str, Any],
    now: float,
    rng: random.Random,
    scene_s: tuple[float, float] = (30, 90),
) -> Assignment:
    """The officer reads the order: answers in 2-6 s, declines about one in ten, then stays
    on scene for a time in `scene_s`."""
    lat, lon = order["location"]["lat"], order["location"]["lon"]
    declines = rng.random() < DECLINE_SHARE
    return Assignment(
        order_id=order["order_id"],
        lat=lat,
        lon=lon,
        goal=city.nearest_node(lat, lon),
        status="received",
        due=now + rng.uniform(2, 6),
        decline_reason=rng.choice(DECLINE_REASONS) if declines else "",
        scene_s=rng.uniform(*scene_s),
    )


def next_ack(task: Assignment, now: float, on_scene: bool) -> str | None:
    """The status the officer acknowledges now, if any."""
    if task.status == "received" and now >= task.due:
        return "declined" if task.decline_reason else "accepted"
    if task.status == "accepted" and now >= task.due:
        return "en_route"
    if task.status == "en_route" and on_scene:
        return "on_scene"
    if task.status == "on_scene" and now >= task.due:
        return "cleared"
    return None


def after_ack(task: Assignment, status: str, now: float, rng: random.Random) -> Assignment | None:
    """The assignment once `status` is acknowledged; None when the officer is done with it."""
    if status in ("declined", "cleared"):
        return None
    due = {"accepted": now + rng.uniform(1, 3), "en_route": now, "on_scene": now + task.scene_s}
    return replace(task, status=status, due=due[status])


def route(home: Zone, task: Assignment | None) -> tuple[Zone, bool]:
    """Where a car drives, and whether it parks there: to its call, else its home grid."""
    if task is not None and task.status in ("en_route", "on_scene"):
        return Zone.at(task.goal), True
    return home, False


# -- the fleet's layout -----------------------------------------------------------------
@dataclass(frozen=True)
class UnitSpec:
    unit_id: str
    kind: str  # patrol_car or guard_post
    name: str
    grid: str
    node: Node  # a car's start, a kiosk's corner


def layout_fleet(city: City, cars: int, kiosks: int, rng: random.Random) -> list[UnitSpec]:
    """Cars spread over the four grids in turn; kiosks at intersections off the city's edge."""
    grids = list(city.zones().items())
    width = max(2, len(str(max(cars, kiosks))))
    specs = []
    for i in range(cars):
        grid, zone = grids[i % len(grids)]
        node = (rng.randint(zone.lo[0], zone.hi[0]), rng.randint(zone.lo[1], zone.hi[1]))
        specs.append(
            UnitSpec(f"car-{i + 1:0{width}d}", "patrol_car", f"Patrol {i + 1}", grid, node)
        )
    for i in range(kiosks):
        node = (rng.randint(1, city.blocks_x - 1), rng.randint(1, city.blocks_y - 1))
        name = f"{POST_SPOTS[i % len(POST_SPOTS)]} kiosk {i + 1}"
        specs.append(
            UnitSpec(
                f"kiosk-{i + 1:0{width}d}",
                "guard_post",
                name,
                city.grid_at(*post_xy(city, node)),
                node,
            )
        )
    return specs


# -- I/O: many MQTT sessions on one thread ------------------------------------------------
class SessionLoop:
    """The network loop of every unit's MQTT session, on one thread with epoll.

    paho's own loop thread per session waits in select(), which cannot watch a socket
    numbered past 1023: a city's fleet (a session and a terminal per car) opens more. paho's
    socket callbacks are its interface for an outside loop like this one.
    """

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        # paho calls the socket callbacks from whichever thread publishes, so changes to the
        # selector are serialised; without it two threads can both find a socket missing
        # and both register it.
        self._selector_lock = threading.Lock()
        self.sessions: set[mqtt.Client] = set()  # those that should be connected
        self.retry_at: dict[mqtt.Client, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-sessions", daemon=True)
        self._thread.start()

    def add(self, client: mqtt.Client) -> None:
        client.on_socket_open = lambda c, _u, sock: self._watch(sock, c, selectors.EVENT_READ)
        client.on_socket_close = lambda _c, _u, sock: self._unwatch(sock)
        client.on_socket_register_write = lambda c, _u, sock: self._watch(
            sock, c, selectors.EVENT_READ | selectors.EVENT_WRITE
        )
        client.on_socket_unregister_write = lambda c, _u, sock: self._watch(
            sock, c, selectors.EVENT_READ
        )
        self.retry_at[client] = 0.0
        self.sessions.add(client)

    def remove(self, client: mqtt.Client) -> None:
        self.sessions.discard(client)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.selector.close()

    def _watch(self, sock: Any, client: mqtt.Client, events: int) -> None:
        with self._selector_lock:
            try:
                self.selector.modify(sock, events, client)
            except KeyError:
                self.selector.register(sock, events, client)

    def _unwatch(self, sock: Any) -> None:
        with self._selector_lock, contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)  # may be gone already with its socket

    def _run(self) -> None:
        last_misc = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            for client in list(self.sessions):
                if client.socket() is None and now >= self.retry_at.get(client, 0.0):
                    self._connect(client, now)
            ready = self.selector.select(timeout=0.2) if self.selector.get_map() else []
            if not ready:
                self._stop.wait(0.01 if self.selector.get_map() else 0.2)
            for key, mask in ready:
                self._serve(key.data, mask)
            if now - last_misc >= 1.0:  # keep-alive pings; a dead link is noticed here
                last_misc = now
                for client in list(self.sessions):
                    client.loop_misc()

    def _serve(self, client: mqtt.Client, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE:
                client.loop_write()
        except Exception:  # one session's fault must not stop the whole fleet's network
            log.exception("an MQTT session failed; the loop goes on serving the other units")

    def _connect(self, client: mqtt.Client, now: float) -> None:
        try:
            client.reconnect()
        except OSError as exc:
            log.debug("broker not reachable (%s); again in 1 s", exc)
            self.retry_at[client] = now + 1.0
        except Exception:  # as in _serve: the other units' sessions go on
            log.exception("an MQTT session could not connect; again in 1 s")
            self.retry_at[client] = now + 1.0


# -- I/O: one unit's MQTT session ---------------------------------------------------------
class UnitLink:
    """A unit's own MQTT session, as its edge agent keeps one: retained online state, a will."""

    def __init__(
        self,
        spec: UnitSpec,
        address: BrokerAddress,
        protocol: str,
        topics: Topics,
        sessions: SessionLoop,
        clock: Clock = WALL,
    ) -> None:
        self.spec = spec
        self.sessions = sessions
        self.clock = clock
        self.address = address
        self.topics = topics
        self.options = SessionOptions(client_id=spec.unit_id, protocol=protocol)
        self.client = new_client(address, self.options)

    def start(self, on_order: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Connect; with `on_order`, the unit also hears its orders (a kiosk's guard does)."""
        self.on_order = on_order
        offline = {"online": False, "ts": self.clock.now(), "kind": self.spec.kind}
        rule = CHANNELS[Channel.STATE]
        self.client.will_set(
            self.topics.unit(self.spec.unit_id, Channel.STATE),
            encode(Channel.STATE, offline),
            qos=rule.qos,
            retain=rule.retain,
        )
        self.client.on_connect = self._on_connect
        connect_persistent(self.client, self.address, self.options)
        self.sessions.add(self.client)

    def publish(self, channel: Channel, message: dict[str, Any]) -> mqtt.MQTTMessageInfo:
        rule = CHANNELS[channel]
        topic = self.topics.unit(self.spec.unit_id, channel)
        return self.client.publish(
            topic, encode(channel, message), qos=rule.qos, retain=rule.retain
        )

    def stop(self) -> None:
        """Say offline (a clean disconnect sends no will), then disconnect."""
        if self.client.is_connected():
            info = self.publish(Channel.STATE, {"online": False, "ts": self.clock.now()})
            try:
                info.wait_for_publish(timeout=2)
            except (
                RuntimeError,
                ValueError,
            ) as exc:  # the link dropped meanwhile: the will says it
                log.debug("%s could not say offline: %s", self.spec.unit_id, exc)
        self.sessions.remove(self.client)
        self.client.disconnect()

    def _on_connect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused %s: %s", self.spec.unit_id, reason_code)
            return
        state = {"online": True, "ts": self.clock.now(), "kind": self.spec.kind, "version": "sim"}
        self.publish(Channel.STATE, state)
        if self.on_order is not None:
            topic = self.topics.unit(self.spec.unit_id, Channel.ORDERS)
            self.client.message_callback_add(topic, self._on_order_message)
            self.client.subscribe(topic, qos=CHANNELS[Channel.ORDERS].qos)

    def _on_order_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        try:
            order = decode(Channel.ORDERS, received_payload(message))
        except WireError as exc:
            log.warning("%s: bad order: %s", self.spec.unit_id, exc)
            return
        assert self.on_order is not None  # subscribed to orders only with a handler
        self.on_order(order)


# -- I/O: an officer's terminal -----------------------------------------------------------
class Officer:
    """The officer's in-car terminal: a real Socket.IO client on `/terminal`.

    Its handlers run in the client's thread and only enqueue; the fleet's thread decides.
    """

    def __init__(self, unit_id: str, token: str, server_url: str, inbox: queue.SimpleQueue):
        self.unit_id = unit_id
        self.token = token
        self.server_url = server_url
        self.inbox = inbox
        self.sio = socketio.Client(handle_sigint=False, reconnection_delay_max=5)
        self.sio.on("connect", self._on_connect, namespace=TERMINAL_NS)
        self.sio.on("order", self._on_order, namespace=TERMINAL_NS)

    def connect(self) -> None:
        self.sio.connect(
            self.server_url,
            auth={"token": self.token},
            namespaces=[TERMINAL_NS],
            wait_timeout=10,
        )

    def disconnect(self) -> None:
        self.sio.shutdown()  # also ends reconnection attempts

    def ack(self, order_id: str, status: str, reason: str = "") -> bool:
        """Send an ack; False if the terminal is offline (the step is tried again)."""
        data = {"order_id": order_id, "status": status, "reason": reason}
        try:
            self.sio.emit(
                "ack",
                data,
                namespace=TERMINAL_NS,
                callback=lambda answer: self._on_answer(order_id, status, answer),
            )
        except socketio.exceptions.SocketIOError as exc:
            log.debug("%s could not send %s: %s", self.unit_id, status, exc)
            return False
        return True

    def _on_connect(self) -> None:
        self.sio.emit("sync", namespace=TERMINAL_NS)  # every held order comes again

    def _on_order(self, order: dict[str, Any]) -> bool:
        self.inbox.put(("order", self.unit_id, order))
        return True  # the callback's answer tells the server the order was delivered

    def _on_answer(self, order_id: str, status: str, answer: Any) -> None:
        if isinstance(answer, dict) and answer.get("ok"):
            return
        log.warning("%s: %s for order %s refused: %s", self.unit_id, status, order_id, answer)
        self.inbox.put(("refused", self.unit_id, order_id))


# -- I/O: the fleet ---------------------------------------------------------------------
@dataclass
class SimCar:
    spec: UnitSpec
    link: UnitLink
    officer: Officer
    home: Zone
    car: Car
    task: Assignment | None = None


@dataclass
class SimKiosk:
    spec: UnitSpec
    link: UnitLink
    lat: float
    lon: float
    # orders to assist a neighbouring post: order id -> when the guard will be done
    assisting: dict[str, float] = field(default_factory=dict)
    reported: float = 0.0  # when it last sent its position


@dataclass(frozen=True)
class Pace:
    """How the fleet's time runs: its clock (a simulated day may run faster), simulated
    seconds between moves, how often the standing kiosks report, an officer's time on scene,
    and the mean time between random panics (0: none, panics come from `raise_panic`)."""

    clock: Clock = WALL
    tick_s: float = 1.0
    post_report_s: float = 1.0
    scene_s: tuple[float, float] = (30.0, 90.0)


@dataclass
class FleetStats:
    acks: int = 0
    declines: int = 0
    panics: int = 0


class Fleet:
    """Every simulated unit, moved by one thread each `pace.tick_s`; the officers' sockets and
    `raise_panic` only enqueue."""

    def __init__(
        self,
        city: City,
        specs: list[UnitSpec],
        tokens: dict[str, str],
        broker_url: str,
        protocol: str,
        server_url: str,
        panic_every: float,
        seed: int | None = None,
        pace: Pace = Pace(),
    ) -> None:
        self.city = city
        self.panic_every = panic_every
        self.pace = pace
        self.rng = random.Random(seed)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.stats = FleetStats()
        address, topics, homes = BrokerAddress.parse(broker_url), Topics(), city.zones()
        self.sessions = SessionLoop()
        self.cars: dict[str, SimCar] = {}
        self.kiosks: list[SimKiosk] = []
        for spec in specs:
            link = UnitLink(spec, address, protocol, topics, self.sessions, pace.clock)
            if spec.kind == "patrol_car":
                officer = Officer(spec.unit_id, tokens[spec.unit_id], server_url, self.inbox)
                car = self._car_at(spec.node)
                self.cars[spec.unit_id] = SimCar(spec, link, officer, homes[spec.grid], car)
            else:
                self.kiosks.append(SimKiosk(spec, link, *post_location(city, spec.node)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def links(self) -> list[UnitLink]:
        return [c.link for c in self.cars.values()] + [k.link for k in self.kiosks]

    def start(self) -> None:
        for sim in self.cars.values():
            sim.link.start()
        for kiosk in self.kiosks:

            def heard(order: dict[str, Any], unit_id: str = kiosk.spec.unit_id) -> None:
                self.inbox.put(("order", unit_id, order))

            kiosk.link.start(heard)
        for sim in self.cars.values():
            sim.officer.connect()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()
        log.info("fleet started: %d cars, %d kiosks", len(self.cars), len(self.kiosks))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        # websocket-client waits up to 3 s for each server's close frame: close all at once
        closers = [threading.Thread(target=c.officer.disconnect) for c in self.cars.values()]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(timeout=5)
        for link in self.links():
            link.stop()
        self.sessions.stop()
        log.info("fleet stopped")

    def _car_at(self, node: Node) -> Car:
        """A car at `node`, about to pull out onto a street."""
        return Car(self.city.neighbours(node)[0], node, self.city.block_m, street_speed(self.rng))

    def raise_panic(self, unit_id: str) -> None:
        """A guard at kiosk `unit_id` holds the panic button (from any thread)."""
        self.inbox.put(("panic", unit_id, None))

    def _next_panic(self, now: float) -> float:
        return now + self.rng.expovariate(1 / self.panic_every) if self.panic_every else math.inf

    def _run(self) -> None:
        clock = self.pace.clock
        last = clock.now()
        next_panic = self._next_panic(last)
        while not self._stop.is_set():
            started = time.monotonic()
            now = clock.now()
            self.tick(now, now - last)
            if self.kiosks and now >= next_panic:
                self.panic(self.rng.choice(self.kiosks), now)
                next_panic = self._next_panic(now)
            last = now
            wait = self.pace.tick_s / clock.speedup - (time.monotonic() - started)
            self._stop.wait(max(0.0, wait))

    def tick(self, now: float, dt: float) -> None:
        """One second of the city: orders read, officers answer, cars move, units report."""
        self._read_inbox(now)
        for sim in self.cars.values():
            self._advance(sim, now, dt)
            sim.link.publish(Channel.POSITION, car_fix(self.city, sim.car, now))
        for kiosk in self.kiosks:
            for order_id, done_at in list(kiosk.assisting.items()):
                if now >= done_at:
                    self._guard_answers(kiosk, order_id, "cleared", now)
                    del kiosk.assisting[order_id]
            if now - kiosk.reported >= self.pace.post_report_s:
                fix = {"ts": now, "lat": kiosk.lat, "lon": kiosk.lon, "speed": 0.0, "acc": 5.0}
                kiosk.link.publish(Channel.POSITION, fix)
                kiosk.reported = now

    def _guard_answers(self, kiosk: SimKiosk, order_id: str, status: str, now: float) -> None:
        kiosk.link.publish(Channel.ACK, {"order_id": order_id, "ts": now, "status": status})
        self._count(status)

    def panic(self, kiosk: SimKiosk, now: float) -> None:
        fix = {"ts": now, "lat": kiosk.lat, "lon": kiosk.lon, "acc": 5.0}
        alarm = {"alarm_id": uuid.uuid4().hex, "ts": now, "kind": "panic", "fix": fix}
        kiosk.link.publish(Channel.ALARM, alarm)
        self.stats.panics += 1
        log.debug("panic at %s", kiosk.spec.unit_id)

    def _advance(self, sim: SimCar, now: float, dt: float) -> None:
        task = sim.task
        if task is not None:
            here = arrived(self.city, sim.car, task.lat, task.lon, task.goal)
            status = next_ack(task, now, here)
            if status and sim.officer.ack(task.order_id, status, task.decline_reason):
                self._count(status)
                sim.task = after_ack(task, status, now, self.rng)
                if sim.task is None:
                    sim.car = self._pull_out(sim.car)
        zone, park = route(sim.home, sim.task)
        sim.car = drive(self.city, sim.car, dt, zone, self.rng, park)

    def _pull_out(self, car: Car) -> Car:
        return replace(car, speed=street_speed(self.rng)) if car.speed == 0 else car

    def _count(self, status: str) -> None:
        self.stats.acks += 1
        if status == "declined":
            self.stats.declines += 1

    def _read_inbox(self, now: float) -> None:
        while True:
            try:
                kind, unit_id, body = self.inbox.get_nowait()
            except queue.Empty:
                return
            sim = self.cars.get(unit_id)
            if kind == "panic":
                self.panic(self._kiosk(unit_id), now)
            elif sim is None:
                self._on_kiosk_order(self._kiosk(unit_id), body, now)
            elif kind == "order":
                self._on_order(sim, body, now)
            elif sim.task is not None and sim.task.order_id == body:
                sim.task = None  # the server refused an ack: the order is no longer ours
                sim.car = self._pull_out(sim.car)

    def _kiosk(self, unit_id: str) -> SimKiosk:
        return next(k for k in self.kiosks if k.spec.unit_id == unit_id)

    def _on_kiosk_order(self, kiosk: SimKiosk, order: dict[str, Any], now: float) -> None:
        """A guard sent to help a neighbouring post accepts, helps a while, then clears."""
        order_id = order["order_id"]
        if order["kind"] == "cancel":
            kiosk.assisting.pop(order_id, None)
        elif order["kind"] == "dispatch" and order_id not in kiosk.assisting:
            self._guard_answers(kiosk, order_id, "accepted", now)
            kiosk.assisting[order_id] = now + self.rng.uniform(60, 180)

    def _on_order(self, sim: SimCar, order: dict[str, Any], now: float) -> None:
        if order.get("kind") != "dispatch" or order.get("state") not in ("sent", "delivered"):
            return  # updates, cancels and orders already answered need nothing from us
        if sim.task is None:
            sim.task = take_order(self.city, order, now, self.rng, self.pace.scene_s)
        elif sim.task.order_id != order["order_id"]:
            sim.officer.ack(order["order_id"], "declined", "Already on a call")
