"""Which gpiozero pin factory drives the unit's pins, chosen and checked before anything starts.

gpiozero falls back through its factories silently and ends with "Unable to load any default
pin factory" when none loads; on a Pi 5 only lgpio reaches the pins (its GPIO sits behind the
RP1 chip, which RPi.GPIO and pigpio cannot drive). `choose_factory` is the decision, over
plain data (the board's model, what is importable); `open_factory` and `claim_pins` are the
I/O, and their errors name the package to install or the pin in the way.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gpiozero import Device, InputDevice
from gpiozero.pins import Factory

MODEL = Path("/proc/device-tree/model")


@dataclass(frozen=True)
class Backend:
    """A gpiozero pin factory, the module it needs and how to get it on Raspberry Pi OS."""

    name: str  # gpiozero's name for it (GPIOZERO_PIN_FACTORY)
    module: str
    install: str
    on_pi5: bool


# Preference order: lgpio is current Raspberry Pi OS's own and the only one on a Pi 5.
BACKENDS: tuple[Backend, ...] = (
    Backend("lgpio", "lgpio", "sudo apt-get install python3-lgpio (or pip install lgpio)", True),
    Backend("rpigpio", "RPi.GPIO", "sudo apt-get install python3-rpi.gpio", False),
    Backend(
        "pigpio",
        "pigpio",
        "sudo apt-get install python3-pigpio pigpiod && sudo systemctl enable --now pigpiod",
        False,
    ),
)
BY_NAME = {b.name: b for b in BACKENDS}


class PinError(RuntimeError):
    """The pins cannot be driven: the message says what to install or what is in the way."""


def board_model(path: Path = MODEL) -> str:
    """The board's model as the firmware names it ("Raspberry Pi 5 Model B Rev 1.0"), or ""."""
    try:
        return path.read_text(errors="replace").rstrip("\0\n")
    except OSError:
        return ""


def is_pi5(model: str) -> bool:
    return model.startswith(("Raspberry Pi 5", "Raspberry Pi Compute Module 5"))


def choose_factory(requested: str, model: str, importable: Callable[[str], bool]) -> str:
    """The factory to use: the one requested, or (auto) the first that this board can use and
    whose module is installed. Raises PinError saying what to install."""
    if requested == "mock":
        return "mock"
    usable = [b for b in BACKENDS if b.on_pi5 or not is_pi5(model)]
    if requested != "auto":
        backend = BY_NAME[requested]
        if backend not in usable:
            raise PinError(f"{requested} cannot drive the pins of a {model}: use lgpio")
        if not importable(backend.module):
            raise PinError(f"pin factory {requested} needs {backend.module}: {backend.install}")
        return requested
    for backend in usable:
        if importable(backend.module):
            return backend.name
    board = model or "this board"
    raise PinError(
        f"no GPIO library for {board} is installed, so the panic button cannot work: "
        f"{usable[0].install}"
    )


def module_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is not there
        return False


def open_factory(name: str) -> Factory:
    """An instance of the chosen factory, made the default of every gpiozero device."""
    try:
        if name == "mock":
            from gpiozero.pins.mock import MockFactory

            # pins a test already drives stay its own
            current = Device.pin_factory
            factory: Factory = current if isinstance(current, MockFactory) else MockFactory()
        elif name == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            factory = LGPIOFactory()
        elif name == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory

            factory = RPiGPIOFactory()
        else:
            from gpiozero.pins.pigpio import PiGPIOFactory

            factory = PiGPIOFactory()
    except Exception as exc:  # each library fails in its own words: say which and why
        raise PinError(
            f"pin factory {name} did not start ({type(exc).__name__}: {exc}); on a Pi, is the"
            " agent's user in the gpio group, and is /dev/gpiochip0 there?"
        ) from exc
    Device.pin_factory = factory
    return factory


def claim_pins(factory: Factory, pins: dict[str, int]) -> None:
    """Claim and release each configured pin, as input with no pull (so a buzzer stays
    silent); one PinError naming every pin that is in use or cannot be had."""
    problems = []
    for name, pin in pins.items():
        try:
            InputDevice(pin, pull_up=None, active_state=True, pin_factory=factory).close()
        except Exception as exc:  # in use by this process, another one, or the kernel
            problems.append(f"{name} = {pin}: {type(exc).__name__}: {exc}")
    if problems:
        raise PinError("pins not free: " + "; ".join(problems))


def prepare(setting: str, pins: dict[str, int], env: Mapping[str, str] = os.environ) -> str:
    """Choose, open and check: the name of the factory now driving the pins. In auto,
    gpiozero's own GPIOZERO_PIN_FACTORY (a name it knows) picks one."""
    requested = setting
    if setting == "auto" and env.get("GPIOZERO_PIN_FACTORY"):
        requested = env["GPIOZERO_PIN_FACTORY"]
        if requested not in (*BY_NAME, "mock"):
            raise PinError(f"GPIOZERO_PIN_FACTORY={requested}: use {', '.join(BY_NAME)} or mock")
    name = choose_factory(requested, board_model(), module_present)
    claim_pins(open_factory(name), pins)
    return name
