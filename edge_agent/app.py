"""The agent assembled: outbox -> MQTT publisher -> orders -> GPIO -> GPS -> fixes -> health.

`start()` and `stop()` are checklists; stop runs in reverse order of start, so the outbox,
which everything else writes to, is the first thing opened and the last thing closed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edge_agent.button import CallProgress, Indicator, PanicButton, Signals
from edge_agent.clock import UnitClock
from edge_agent.config import Settings, configured_pins
from edge_agent.fixes import FixStage
from edge_agent.gps_source import GpsReader
from edge_agent.orders import Orders
from edge_agent.outbox import Outbox, Uplink
from edge_agent.pins import prepare
from edge_agent.power import Ignition
from edge_agent.publisher import Publisher
from edge_agent.watchdog import SystemdNotifier
from wire import Channel, Topics, WireError

log = logging.getLogger(__name__)

CPU_TEMP = Path("/sys/class/thermal/thermal_zone0/temp")
ROUTES = Path("/proc/net/route")


def agent_version() -> str:
    try:
        return version("fieldlink")
    except PackageNotFoundError:
        return "unknown"


def cpu_temp_c(path: Path = CPU_TEMP) -> float | None:
    """The SoC temperature (a Pi in a car in summer throttles), when the kernel tells it."""
    try:
        return int(path.read_text()) / 1000
    except (OSError, ValueError):
        return None


def default_link(path: Path = ROUTES) -> str:
    """The interface carrying the default route (wlan0, wwan0, eth0...), or "none"."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return "unknown"
    for line in lines:
        parts = line.split()
        if len(parts) > 1 and parts[1] == "00000000":
            return parts[0][:32]
    return "none"


class Agent:
    def __init__(self, settings: Settings, clock: UnitClock | None = None):
        self.settings = settings
        self.clock = clock or UnitClock()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.outbox = Outbox(settings.outbox.path, settings.outbox.max_rows)
        self.uplink = Uplink(self.outbox, settings.unit.id, Topics(settings.mqtt.topic_root))
        self.publisher = Publisher(settings, self.uplink, agent_version(), self.clock.now)
        self.orders = Orders(self.uplink, self.clock.now)
        self.gps = GpsReader(settings.gpsd.host, settings.gpsd.port)
        self.fixes = FixStage(settings.filters, settings.gpsd, self.clock.judging_time)
        self.panic: PanicButton | None = None
        self.signals: Signals | None = None
        self.indicator: Indicator | None = None
        self.call: CallProgress | None = None
        self.pin_factory = ""
        self.ignition: Ignition | None = None
        self.systemd = SystemdNotifier()

    def start(self) -> None:
        s = self.settings
        log.info("starting agent for unit %s (%s)", s.unit.id, s.unit.kind)
        self.pin_factory = prepare(s.gpio.pin_factory, configured_pins(s))  # PinError: no button
        log.info("GPIO through %s", self.pin_factory)
        self.indicator = Indicator(s.signals)
        call = self.call = CallProgress(self.indicator)
        self.signals = Signals(s.signals, self.orders, self.indicator)
        self.panic = PanicButton(
            s.panic, self.uplink, lambda: self.fixes.last_good, call.pressed, self.clock.now
        )
        self.publisher.on_order = self.orders.handle
        self.publisher.on_receipt = lambda receipt: call.stored(receipt.get("alarms", ()))
        self.publisher.on_call = call.update
        self.publisher.start()
        self._spawn("gps", self._gps_loop)
        self._spawn("health", self._health_loop)
        if s.power.ignition_pin is not None:
            self.ignition = Ignition(s.power, self.busy)
            self._spawn("ignition", self._ignition_loop)
        self.systemd.notify("READY=1")
        if self.systemd.interval_s:
            self._spawn("watchdog", self._watchdog_loop)

    def stop(self) -> None:
        log.info("stopping agent")
        self._stop.set()
        self.gps.close()  # unblocks a poll waiting on gpsd
        for thread in reversed(self._threads):
            thread.join(timeout=10)
        self.publisher.stop()
        if self.panic:
            self.panic.close()
        if self.signals:
            self.signals.close()
        if self.indicator:
            self.indicator.close()
        if self.ignition:
            self.ignition.close()
        self.outbox.close()

    def run(self) -> None:
        """Start, wait for SIGTERM (systemd) or SIGINT (Ctrl-C), stop."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        self.start()
        try:
            self._stop.wait()
        finally:
            self.stop()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _gps_loop(self) -> None:
        for fix in self.gps.fixes(self._stop):
            due = self.fixes.offer(fix)
            if self.fixes.last_good is fix:  # accepted: GPS time, until the clock is synced
                self.clock.observe(fix)
            if not due:
                continue
            try:
                self.uplink.send(Channel.POSITION, fix)
            except WireError as exc:  # a receiver glitch must not stop the positions after it
                log.warning("dropped a fix the wire protocol rejects: %s", exc)

    def alive(self) -> bool:
        """Every thread the agent runs is still running (a dead one means a restart is due)."""
        return self.publisher.alive() and all(t.is_alive() for t in self._threads)

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(self.systemd.interval_s):
            if self.alive():
                self.systemd.notify("WATCHDOG=1")
            else:
                log.error("a thread of the agent died; letting systemd's watchdog restart it")

    def busy(self) -> bool:
        """An order open or the unit's own call on: the Pi stays up with the engine off."""
        return self.orders.current() is not None or bool(self.call and self.call.active())

    def _ignition_loop(self) -> None:
        assert self.ignition is not None
        while not self._stop.wait(1.0):
            self.ignition.check()

    def _health_loop(self) -> None:
        while not self._stop.wait(self.settings.health.interval_s):
            self.uplink.send(Channel.HEALTH, self.health())

    def health(self) -> dict[str, Any]:
        report = {
            "ts": self.clock.now(),
            "fix_mode": self.gps.fix_mode,
            "sats": self.gps.sats,
            "outbox": self.outbox.depth(),
            "unconfirmed": self.outbox.unconfirmed(),
            "uptime_s": time.monotonic() - self.started,
            "dropped": self.outbox.dropped,
            "filtered": self.fixes.filtered,
            "link": default_link(),
            "gpio": self.pin_factory,
            "clock": self.clock.source(),
            "clock_synced_at": self.clock.synced_at,
        }
        temp = cpu_temp_c()
        if temp is not None:
            report["cpu_temp_c"] = round(temp, 1)
        return report
