"""The simulator's network loop: many units' MQTT sessions on one thread."""

from __future__ import annotations

import selectors
import socket
import threading

import paho.mqtt.client as mqtt

from harness.waiting import eventually
from server.sim.simulator import SessionLoop


def test_a_socket_watched_from_many_threads_at_once_is_registered_once():
    # paho calls the socket callbacks from whichever thread publishes; in the demo two
    # threads once both found a new socket missing and the second register killed the loop.
    sessions = SessionLoop()
    left, right = socket.socketpair()
    try:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        barrier = threading.Barrier(8)
        failures: list[BaseException] = []

        def watch() -> None:
            barrier.wait()
            try:
                sessions._watch(left, client, selectors.EVENT_READ | selectors.EVENT_WRITE)
            except BaseException as exc:  # the test reports any of them
                failures.append(exc)

        threads = [threading.Thread(target=watch) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert len(sessions.selector.get_map()) == 1
        sessions._unwatch(left)
    finally:
        sessions.stop()
        left.close()
        right.close()


class Session:
    """Stands in for a paho client on one end of a socket pair: counts what the loop asks."""

    def __init__(self, sock: socket.socket, fails: bool = False):
        self.sock, self.fails = sock, fails
        self.reads = self.connects = 0

    def socket(self) -> socket.socket:
        return self.sock

    def loop_read(self) -> None:
        self.reads += 1
        self.sock.recv(64)
        if self.fails:
            raise RuntimeError("a session in a state paho did not expect")

    def loop_write(self) -> None:
        pass

    def loop_misc(self) -> None:
        pass


class Unconnected(Session):
    def socket(self) -> None:  # type: ignore[override]
        return None

    def reconnect(self) -> None:
        self.connects += 1
        raise KeyError("raised from inside paho's reconnect")


def test_one_sessions_failure_leaves_the_loop_serving_every_other_unit():
    sessions = SessionLoop()
    pairs = [socket.socketpair() for _ in range(2)]
    broken, healthy = Session(pairs[0][0], fails=True), Session(pairs[1][0])
    unconnected = Unconnected(pairs[0][0])
    try:
        for session in (broken, healthy):
            sessions._watch(session.sock, session, selectors.EVENT_READ)  # type: ignore[arg-type]
        sessions.sessions.add(unconnected)  # type: ignore[arg-type]
        for _ in range(3):
            for _sock, far_end in pairs:
                far_end.send(b"x")
            eventually(lambda: broken.reads and healthy.reads, what="both sessions read")
            broken.reads = healthy.reads = 0
        assert sessions._thread.is_alive()
        # a failing connect is tried again a second later, the loop still running
        eventually(lambda: unconnected.connects >= 2, timeout=5, what="a second connect")
        assert sessions._thread.is_alive()
    finally:
        sessions.stop()
        for pair in pairs:
            for end in pair:
                end.close()
