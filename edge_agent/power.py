"""The car's ignition: when it has been off long enough and the unit has nothing open, the
Pi shuts down cleanly instead of having its power cut under it.

The ignition line comes in through an opto-coupler on a GPIO (firmware_config/README.md).
Cranking the engine dips it, and an officer who switches the engine off at a scene is still
on the call: so it must stay off for `off_after_s`, and nothing happens while an order is open
or the unit's own call for help is on. `power_off_due` is that decision; `Ignition` reads the
pin and runs the shutdown command (systemd then stops the agent, which says goodbye).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Callable

from gpiozero import DigitalInputDevice

from edge_agent.config import PowerSettings

log = logging.getLogger(__name__)


def power_off_due(off_since: float | None, now: float, off_after_s: float, busy: bool) -> bool:
    """The ignition has been off (since `off_since`, monotonic) for long enough, and idle."""
    return off_since is not None and not busy and now - off_since >= off_after_s


class Ignition:
    def __init__(
        self,
        settings: PowerSettings,
        busy: Callable[[], bool],
        mono: Callable[[], float] = time.monotonic,
    ):
        assert settings.ignition_pin is not None
        self.settings = settings
        self.busy = busy
        self.mono = mono
        # active: the ignition is on (the opto-coupler pulls the line low, by default)
        self.line = DigitalInputDevice(
            settings.ignition_pin, pull_up=settings.ignition_active_low, bounce_time=0.05
        )
        self.off_since: float | None = None
        self.shutting_down = False

    def check(self) -> bool:
        """Look at the line once (every second); True when the shutdown was started now."""
        now = self.mono()
        if self.line.is_active:
            self.off_since = None
            return False
        if self.off_since is None:
            self.off_since = now
            log.info("ignition off: shutting down after %.0f s if idle", self.settings.off_after_s)
        if self.shutting_down or not power_off_due(
            self.off_since, now, self.settings.off_after_s, self.busy()
        ):
            return False
        self.shutting_down = True
        log.warning(
            "ignition off for %.0f s: %s", now - self.off_since, self.settings.shutdown_command
        )
        try:
            subprocess.run(shlex.split(self.settings.shutdown_command), check=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("the shutdown command failed (%s); trying again in a minute", exc)
            self.off_since = now - self.settings.off_after_s + 60
            self.shutting_down = False
        return True

    def close(self) -> None:
        self.line.close()
