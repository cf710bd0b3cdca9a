"""systemd's notify protocol: READY=1 once started, WATCHDOG=1 while the agent is alive.

With `WatchdogSec=` in the unit, systemd restarts an agent that stops pinging: a hung thread
on a Pi in a car is found within a minute instead of when someone notices the unit is gone.
Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] = os.environ):
        address = env.get("NOTIFY_SOCKET", "")
        # an abstract socket's name starts with "@", which stands for a NUL byte
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        # ping at half the timeout, as sd_watchdog_enabled(3) advises
        self.interval_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    def notify(self, state: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(state.encode(), self.address)
        except OSError as exc:
            log.warning("could not notify systemd (%s): %s", state, exc)
