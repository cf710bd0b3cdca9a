"""Devices and accounts taken back at once, against a live server on the production broker.

`fieldlink units token --rotate`, `units remove` and `users token|remove` run beside the
server as an operator runs them; the server lets the screens go, and the broker (its files
rewritten and reloaded by the same command) drops the unit's MQTT session.
"""

from __future__ import annotations

import json
import logging
import time

import socketio

from harness.clients import Console, Terminal
from harness.server import ServerProcess
from harness.waiting import eventually
from server.store import Unit, db, token_digest
from tests.e2e.test_broker_acl import BAD_LOGIN
from tests.locked_broker import Probe, login
from wire import Channel, Topics, encode

TOPICS = Topics()
FIX = {"ts": time.time(), "lat": 31.23, "lon": 121.47}
log = logging.getLogger(__name__)
LET_GO_WITHIN_S = 10  # the sweep runs every 2 s; a slow machine gets room


def run(server: ServerProcess, *args: str) -> dict:
    done = server.command(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def let_go(client: socketio.Client, what: str) -> float:
    start = time.monotonic()
    eventually(lambda: not client.connected, timeout=LET_GO_WITHIN_S, what=what)
    took = time.monotonic() - start
    log.info("%s after %.1f s", what, took)  # a figure for the notes, not a pass mark
    return took


def fleet(server: ServerProcess) -> set[str]:
    return {u["id"] for u in server.get("/api/v1/units")}


def refused(server: ServerProcess, token: str) -> bool:
    try:
        Terminal(server.url, token).close()
    except socketio.exceptions.ConnectionError:
        return True
    return False


def test_a_rotated_token_or_a_removed_unit_is_let_go_at_once_on_screen_and_broker(
    locked_server,
) -> None:
    server, broker = locked_server
    added = run(server, "units", "add", "car-9", "--kind", "patrol_car")
    token, password = added["terminal_token"], added["mqtt_password"]
    with db.connection_context():  # a copy of the store lets no one in
        assert Unit.get_by_id("car-9").terminal_token_hash == token_digest(token)
    mqtt_url = f"mqtt://car-9:{password}@127.0.0.1:{broker.port}"
    # `units add` rewrote the password file and reloaded the broker itself
    eventually(lambda: not login(mqtt_url).is_failure, what="the new unit let in by the broker")
    car = Probe(mqtt_url)
    assert not car.connect().is_failure
    screen = Terminal(server.url, token)

    new_token = run(server, "units", "token", "car-9", "--rotate")["terminal_token"]
    let_go(screen.sio, "the screen with the old token let go")
    assert refused(server, token)
    screen = Terminal(server.url, new_token)
    assert car.client.is_connected()  # the broker password is not the device token

    car.publish(TOPICS.unit("car-9", Channel.POSITION), encode(Channel.POSITION, FIX))
    eventually(lambda: "car-9" in fleet(server), what="the new unit on the map")
    done = server.command("units", "remove", "car-9")
    assert done.returncode == 0 and "ran kill -HUP" in done.stderr, done.stderr
    let_go(screen.sio, "the screen of the removed unit let go")
    eventually(lambda: not car.client.is_connected(), what="the broker dropped the unit")
    assert login(mqtt_url).value in BAD_LOGIN
    assert refused(server, new_token)
    eventually(lambda: "car-9" not in fleet(server), what="the removed unit gone from the map")
    car.close()


def test_an_accounts_new_token_or_removal_ends_its_consoles_and_api_access(
    locked_server,
) -> None:
    server, _broker = locked_server
    first = run(server, "users", "add", "desk-2", "--role", "dispatcher")["api_token"]
    console = Console(server.url, first)
    second = run(server, "users", "token", "desk-2")["api_token"]
    let_go(console.sio, "the console signed in with the old token let go")
    assert server.request("GET", "/api/v1/units", token=first).status_code == 401

    console = Console(server.url, second)
    run(server, "users", "remove", "desk-2")
    let_go(console.sio, "the removed account's console let go")
    assert server.request("GET", "/api/v1/units", token=second).status_code == 401
