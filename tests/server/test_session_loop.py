"""The simulator's network loop: many units' MQTT sessions on one thread."""

from __future__ import annotations

import selectors
import socket
import threading

import paho.mqtt.client as mqtt

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
