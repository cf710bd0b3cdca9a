"""Agent settings: a TOML file, overridden by FIELDLINK_<SECTION>_<KEY> environment variables.

Every key is declared once below, with its default and its doc; the example file
(firmware_config/agent.example.toml) and `--validate-config` are built on the same table.
Errors name the key and say what is wrong, in words a technician on site understands.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mqtt_link import PROTOCOLS, BrokerAddress
from wire import DEFAULT_ROOT, MAX_BATCH
from wire.topics import valid_unit_id

UNIT_KINDS = ("patrol_car", "motorcycle", "guard_post", "foot", "volunteer")
BCM_PINS = range(28)
PIN_FACTORIES = (
    "auto",
    "lgpio",
    "rpigpio",
    "pigpio",
    "mock",
)  # GPIO 0-27 on the Pi's 40-pin header


class ConfigError(ValueError):
    """One or more settings the agent cannot use; `problems` lists them one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _key(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class UnitSettings:
    id: str = _key("", "This unit's id on the wire (1-64 of A-Z a-z 0-9 _ -). Required.")
    kind: str = _key("patrol_car", f"What the unit is: {', '.join(UNIT_KINDS)}.")


@dataclass(frozen=True)
class MqttSettings:
    url: str = _key(
        "mqtt://127.0.0.1:1883",
        "Broker: mqtt://[user:password@]host[:port], or mqtts://... for TLS (port 8883).",
    )
    protocol: str = _key("5", "MQTT version, 5 or 3.1.1; a broker that refuses 5 gets 3.1.1.")
    client_id: str = _key("", "Fixed MQTT client id; empty means agent-<unit id>.")
    ca_file: str = _key("", "CA certificate file for mqtts://; empty uses the system CAs.")
    ca_pem: str = _key(
        "",
        "The CA certificate itself (PEM), as `fieldlink units bundle` writes it; "
        "takes the place of ca_file.",
    )
    keepalive_s: int = _key(30, "Seconds between keepalive pings; a dead link shows after 1.5x.")
    topic_root: str = _key(DEFAULT_ROOT, "Root of every MQTT topic; must match the server.")
    session_expiry_s: int = _key(
        7 * 24 * 3600, "How long the broker keeps this unit's session (and orders) while away."
    )
    max_inflight: int = _key(
        100, "Messages sent and not yet acknowledged at once (paho's ids wrap at 65,535)."
    )
    reconnect_max_s: float = _key(
        5.0,
        "Longest wait between two attempts to reach the broker (the wait doubles from about "
        "1 s, and differs a little from unit to unit so a fleet does not knock at once).",
    )


@dataclass(frozen=True)
class GpsdSettings:
    host: str = _key("127.0.0.1", "Host of the gpsd daemon.")
    port: int = _key(2947, "TCP port of the gpsd daemon.")
    publish_interval_s: float = _key(
        1.0, "Publish a fix when this many seconds (by fix time) passed since the last one sent."
    )
    min_distance_m: float = _key(
        50.0, "...or when the unit moved this many metres since then; 0 turns this rule off."
    )
    stationary_speed_mps: float = _key(
        0.5, "Below this speed (m/s) the unit is standing still (a kiosk, a parked car)."
    )
    stationary_after_s: float = _key(
        60.0, "Seconds of standing still before the slower stationary interval applies."
    )
    stationary_interval_s: float = _key(
        30.0, "Seconds between published fixes while standing still (the unit's heartbeat)."
    )


@dataclass(frozen=True)
class FiltersSettings:
    min_mode: int = _key(2, "Least gpsd fix mode published: 2 (2D fix) or 3 (3D fixes only).")
    null_island: bool = _key(True, "Drop fixes at exactly 0, 0: a receiver's placeholder.")
    max_future_s: float = _key(
        600.0,
        "Drop fixes dated this many seconds ahead of the clock (keep the Pi's clock"
        " synced: chrony fed by gpsd); 0 turns this off.",
    )
    max_speed_mps: float = _key(
        70.0,
        "Drop a fix that implies a speed above this (m/s) from the last published one;"
        " 0 turns this off.",
    )
    max_acc_m: float = _key(
        0.0,
        "Drop fixes whose error estimate (gpsd's epx/epy, 95%) is above this many metres;"
        " 0 keeps them all.",
    )


@dataclass(frozen=True)
class OutboxSettings:
    path: str = _key(
        "/var/lib/fieldlink-agent/outbox.db",
        "SQLite file that holds every message until it is safe (the server stored it).",
    )
    max_rows: int = _key(
        500_000,
        "Most messages kept while offline (500,000 = 5.8 days at 1 Hz); when full, the"
        " oldest positions are dropped (counted in health's `dropped`), never alarms or acks.",
    )
    batch_size: int = _key(
        200,
        "A backlog of positions goes out as batches of up to this many fixes (1 to 1000).",
    )
    receipt_timeout_s: float = _key(
        30.0,
        "An alarm or an ack the broker took but the server has not confirmed storing within"
        " this many seconds is sent again (positions go again after a reconnect).",
    )


@dataclass(frozen=True)
class PanicSettings:
    pin: int = _key(17, "BCM number of the GPIO the panic button pulls to ground.")
    hold_s: float = _key(1.5, "How long the button must be held before the alarm goes out.")
    drill: bool = _key(False, "Drill mode: alarms are sent with kind 'test', not 'panic'.")


@dataclass(frozen=True)
class SignalsSettings:
    ack_pin: int | None = _key(None, "BCM number of a button that accepts the current order.")
    buzzer_pin: int | None = _key(None, "BCM number of a buzzer that beeps for a new order.")
    led_pin: int | None = _key(None, "BCM number of an LED that blinks for a new order.")


@dataclass(frozen=True)
class GpioSettings:
    pin_factory: str = _key(
        "auto",
        "gpiozero pin factory: auto (lgpio, else RPi.GPIO, else pigpio; a Pi 5 only lgpio),"
        " lgpio, rpigpio, pigpio, or mock (no hardware: tests, a bench). In auto,"
        " GPIOZERO_PIN_FACTORY still picks one.",
    )


@dataclass(frozen=True)
class PowerSettings:
    ignition_pin: int | None = _key(
        None, "BCM number of the car's ignition line (through an opto-coupler); not set: no line."
    )
    ignition_active_low: bool = _key(
        True, "The line reads low while the ignition is on (an opto-coupler to ground)."
    )
    off_after_s: float = _key(
        600.0,
        "Shut the Pi down when the ignition has been off this long and no order or call of"
        " the unit's own is open (an officer at a scene keeps the engine off).",
    )
    shutdown_command: str = _key(
        "systemctl poweroff",
        "What shuts the Pi down (firmware_config/polkit lets the agent's user run it).",
    )


@dataclass(frozen=True)
class HealthSettings:
    interval_s: float = _key(30.0, "Seconds between health messages to the server.")


@dataclass(frozen=True)
class Settings:
    unit: UnitSettings = field(default_factory=UnitSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    gpsd: GpsdSettings = field(default_factory=GpsdSettings)
    filters: FiltersSettings = field(default_factory=FiltersSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    panic: PanicSettings = field(default_factory=PanicSettings)
    signals: SignalsSettings = field(default_factory=SignalsSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    power: PowerSettings = field(default_factory=PowerSettings)
    health: HealthSettings = field(default_factory=HealthSettings)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"agent-{self.unit.id}"


# Each field's default_factory is its section's class (typeshed: any factory, or MISSING).
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in fields(Settings)}  # type: ignore[misc]


def env_name(section: str, key: str) -> str:
    return f"FIELDLINK_{section.upper()}_{key.upper()}"


def reference() -> list[tuple[str, str, Any, str]]:
    """(section, key, default, doc) for every setting, in declaration order."""
    return [
        (section, f.name, f.default, f.metadata["doc"])
        for section, cls in SECTIONS.items()
        for f in fields(cls)
    ]


def load(path: str | Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from a TOML file (None: defaults only), then the environment; validated."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([f"{path}: {exc}"]) from None
    env = os.environ if env is None else env
    problems: list[str] = []
    sections = {}
    for name in raw.keys() - SECTIONS.keys():
        problems.append(f"unknown section [{name}]; known sections: {', '.join(SECTIONS)}")
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name} must be a [{name}] section, not a single value")
            table = {}
        sections[name] = _build_section(name, cls, table, env, problems)
    settings = Settings(**sections)
    problems.extend(check(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def _build_section(
    name: str, cls: type, table: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> Any:
    known = {f.name: f for f in fields(cls)}
    for key in table.keys() - known.keys():
        problems.append(f"unknown key {name}.{key}; keys of [{name}] are: {', '.join(known)}")
    values: dict[str, Any] = {}
    for key, f in known.items():
        kind = f.type
        assert isinstance(kind, str)  # postponed annotations: a field's type is its text
        variable = env_name(name, key)
        if env.get(variable, "") != "":
            value, error = _from_text(kind, env[variable])
            where = variable
        elif key in table:
            value, error = _typed(kind, table[key])
            where = f"{name}.{key}"
        else:
            continue
        if error:
            problems.append(f"{where} = {env.get(variable, table.get(key))!r}: {error}")
        else:
            values[key] = value
    return cls(**values)


_TYPE_WORDS = {
    "str": "text in quotes",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "int | None": "a whole number (a BCM pin)",
}


def _typed(kind: str, value: Any) -> tuple[Any, str | None]:
    """A TOML value checked against the declared type: (value, None) or (None, why not)."""
    ok = {
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        # bool is a subclass of int in Python, but `true` is no pin number
        "int": isinstance(value, int) and not isinstance(value, bool),
        "int | None": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
    }[kind]
    if not ok:
        return None, f"must be {_TYPE_WORDS[kind]}"
    return (float(value) if kind == "float" else value), None


def _from_text(kind: str, text: str) -> tuple[Any, str | None]:
    """An environment variable's text converted to the declared type."""
    text = text.strip()
    if kind == "str":
        return text, None
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return text.lower() in ("1", "true", "yes", "on"), None
        return None, "must be true or false"
    if kind == "int | None" and text.lower() == "none":
        return None, None
    try:
        return (float(text) if kind == "float" else int(text)), None
    except ValueError:
        return None, f"must be {_TYPE_WORDS[kind]}"


def check(s: Settings) -> list[str]:
    """Checks of values and of related settings together; one message per problem."""
    problems: list[str] = []
    if not s.unit.id:
        problems.append("unit.id is required (set it in the file or FIELDLINK_UNIT_ID)")
    elif not valid_unit_id(s.unit.id):
        problems.append(f"unit.id = {s.unit.id!r}: use 1-64 of A-Z a-z 0-9 _ -")
    if s.unit.kind not in UNIT_KINDS:
        problems.append(f"unit.kind = {s.unit.kind!r}: use one of {', '.join(UNIT_KINDS)}")
    try:
        BrokerAddress.parse(s.mqtt.url)
    except ValueError as exc:
        problems.append(f"mqtt.url: {exc}")
    if s.mqtt.protocol not in PROTOCOLS:
        problems.append(f'mqtt.protocol = {s.mqtt.protocol!r}: use "5" or "3.1.1"')
    if not 0 < s.mqtt.max_inflight < 65535:
        problems.append(f"mqtt.max_inflight = {s.mqtt.max_inflight}: use 1 to 65534")
    if not 0 < s.outbox.batch_size <= MAX_BATCH:
        problems.append(f"outbox.batch_size = {s.outbox.batch_size}: use 1 to {MAX_BATCH}")
    if s.filters.min_mode not in (2, 3):
        problems.append(f"filters.min_mode = {s.filters.min_mode}: use 2 or 3")
    if s.gpsd.stationary_interval_s < s.gpsd.publish_interval_s:
        problems.append(
            f"gpsd.stationary_interval_s = {s.gpsd.stationary_interval_s} is below"
            f" gpsd.publish_interval_s = {s.gpsd.publish_interval_s}: standing still must not"
            " report more often than moving"
        )
    if not 0 < s.gpsd.port < 65536:
        problems.append(f"gpsd.port = {s.gpsd.port}: not a TCP port")
    positive = {
        "mqtt.keepalive_s": s.mqtt.keepalive_s,
        "gpsd.publish_interval_s": s.gpsd.publish_interval_s,
        "outbox.max_rows": s.outbox.max_rows,
        "panic.hold_s": s.panic.hold_s,
        "health.interval_s": s.health.interval_s,
        "mqtt.session_expiry_s": s.mqtt.session_expiry_s,
        "mqtt.reconnect_max_s": s.mqtt.reconnect_max_s,
        "outbox.receipt_timeout_s": s.outbox.receipt_timeout_s,
        "power.off_after_s": s.power.off_after_s,
    }
    problems.extend(
        f"{name} = {value}: must be above 0" for name, value in positive.items() if value <= 0
    )
    # 0 turns these rules off, so only negative values are wrong
    optional = {
        "gpsd.min_distance_m": s.gpsd.min_distance_m,
        "gpsd.stationary_speed_mps": s.gpsd.stationary_speed_mps,
        "gpsd.stationary_after_s": s.gpsd.stationary_after_s,
        "filters.max_future_s": s.filters.max_future_s,
        "filters.max_speed_mps": s.filters.max_speed_mps,
        "filters.max_acc_m": s.filters.max_acc_m,
    }
    problems.extend(
        f"{name} = {value}: must be 0 or more" for name, value in optional.items() if value < 0
    )
    if s.gpio.pin_factory not in PIN_FACTORIES:
        problems.append(
            f"gpio.pin_factory = {s.gpio.pin_factory!r}: use one of {', '.join(PIN_FACTORIES)}"
        )
    if not s.power.shutdown_command.strip():
        problems.append("power.shutdown_command is empty: name what shuts the Pi down")
    problems.extend(_check_pins(s))
    return problems


def configured_pins(s: Settings) -> dict[str, int]:
    """Every GPIO the settings use, by the key that names it."""
    pins = {
        "panic.pin": s.panic.pin,
        "signals.ack_pin": s.signals.ack_pin,
        "signals.buzzer_pin": s.signals.buzzer_pin,
        "signals.led_pin": s.signals.led_pin,
        "power.ignition_pin": s.power.ignition_pin,
    }
    return {name: pin for name, pin in pins.items() if pin is not None}


def _check_pins(s: Settings) -> list[str]:
    used = configured_pins(s)
    problems = [
        f"{name} = {pin}: BCM pins are 0 to 27" for name, pin in used.items() if pin not in BCM_PINS
    ]
    by_pin: dict[int, list[str]] = {}
    for name, pin in used.items():
        by_pin.setdefault(pin, []).append(name)
    problems.extend(
        f"{' and '.join(names)} use the same pin {pin}"
        for pin, names in by_pin.items()
        if len(names) > 1
    )
    return problems
