"""GPS fixes from gpsd, through gpsd-py3, behind one small reader with reconnect.

gpsd-py3 keeps one module-global socket and never reconnects, so this module owns that
socket: one GpsReader per process. Seen with gpsd 3.22: `get_current()` raises
UserWarning("GPS not active") until gpsd has a device, early answers can say mode 3 with
an empty time, and the same fix comes back on every poll until the next one (with the
GGA, GLL and RMC of one second giving slightly different positions). Hence the rules:
a fix needs a time, and a fix time is yielded once however often it is polled. Whether a
fix is good enough to publish, and when, is decided by the next stage (edge_agent.fixes).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import gpsd

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0  # a gpsd that stops answering is treated like one that went away
MAX_BACKOFF_S = 30.0


def to_fix(report: Any) -> dict[str, Any] | None:
    """A wire fix from a gpsd-py3 GpsResponse, or None when it has no time (no fix)."""
    # gpsd-py3 fills the time only from mode 2 up; the fix filters still check the mode
    if not report.time:
        return None
    fix: dict[str, Any] = {
        "ts": datetime.fromisoformat(report.time).timestamp(),
        "lat": report.lat,
        "lon": report.lon,
        "speed": report.hspeed,
        "mode": report.mode,
    }
    # gpsd-py3 fills a missing track with 0, and a stationary unit's track is noise anyway.
    if report.hspeed > 0:
        fix["heading"] = report.track % 360
    # gpsd-py3 reports a missing altitude as 0.0 (an RMC-only fix): leave it out then.
    if report.mode >= 3 and report.alt != 0.0:
        fix["alt"] = report.alt
    horizontal = max(report.error.get("x", 0), report.error.get("y", 0))
    if horizontal > 0:
        fix["acc"] = horizontal
    return fix


class GpsReader:
    """Yields each new fix from gpsd once; reconnects with backoff when gpsd goes away."""

    def __init__(self, host: str, port: int, poll_s: float = 0.2):
        self.host = host
        self.port = port
        self.poll_s = poll_s
        self.fix_mode = 0
        self.sats = 0
        self._last_ts: float | None = None
        self._connected = False

    def fixes(self, stop: threading.Event) -> Iterator[dict[str, Any]]:
        """Fixes until `stop` is set; the answer to the next poll is yielded only when its
        fix time changed (gpsd repeats a fix until the receiver sends the next one)."""
        backoff = self.poll_s
        while not stop.is_set():
            if not self._connected and not self._connect():
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = self.poll_s
            fix = self._next_fix()
            if fix is not None:
                yield fix
            stop.wait(self.poll_s)

    def _next_fix(self) -> dict[str, Any] | None:
        report = self._poll()
        if report is None:
            return None
        self.fix_mode, self.sats = report.mode, report.sats_valid
        fix = to_fix(report)
        if fix is None or fix["ts"] == self._last_ts:
            return None
        self._last_ts = fix["ts"]
        return fix

    def _connect(self) -> bool:
        self.close()
        try:
            gpsd.connect(host=self.host, port=self.port)
        # gpsd-py3 raises OSError, JSONDecodeError or a bare Exception (unexpected welcome).
        except Exception as exc:
            log.debug("gpsd at %s:%s not reachable: %s", self.host, self.port, exc)
            return False
        gpsd.gpsd_socket.settimeout(READ_TIMEOUT_S)
        self._connected = True
        log.info("connected to gpsd at %s:%s", self.host, self.port)
        return True

    def _poll(self) -> Any:
        try:
            return gpsd.get_current()
        except UserWarning:  # "GPS not active": gpsd is up but has no device yet
            self.fix_mode, self.sats = 0, 0
            return None
        # A dead socket shows as OSError or as an empty line (JSONDecodeError); a reply gpsd-py3
        # didn't expect as a bare Exception. Each means the stream is out of step: reconnect.
        except Exception as exc:
            log.warning("lost gpsd at %s:%s (%s); reconnecting", self.host, self.port, exc)
            self._connected = False
            self.fix_mode, self.sats = 0, 0
            return None

    def close(self) -> None:
        """Close gpsd-py3's global socket (also unblocks a poll waiting in another thread)."""
        self._connected = False
        sock, stream = gpsd.gpsd_socket, gpsd.gpsd_stream
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
            stream.close()
        sock.close()
        gpsd.gpsd_socket = gpsd.gpsd_stream = None
