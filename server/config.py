"""Server settings: every key declared once with its default and doc; read from FIELDLINK_* env."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.rules.categories import category_names, parse_names
from wire import DEFAULT_ROOT

ASYNC_MODES = ("threading", "gevent")


class ConfigError(ValueError):
    """Settings the server cannot use; `problems` lists each, naming its variable."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("127.0.0.1", "Address the HTTP/Socket.IO server listens on.")
    port: int = _setting(8080, "Port the HTTP/Socket.IO server listens on.")
    db_url: str = _setting(
        "sqlite:///fieldlink.db",
        "Database URL: sqlite:///path, or postgresql://user:password@host/db (pooled; "
        "?max_connections=32&stale_timeout=300&timeout=10 are the defaults).",
    )
    mqtt_url: str = _setting(
        "mqtt://127.0.0.1:1883", "Broker URL: mqtt://[user:password@]host[:port] or mqtts://."
    )
    mqtt_protocol: str = _setting(
        "5", "MQTT protocol version, 5 or 3.1.1; a broker that refuses v5 gets 3.1.1."
    )
    mqtt_bulk_protocol: str = _setting(
        "3.1.1",
        "MQTT version of the session that takes positions and health: 3.1.1 spares paho "
        "building v5 properties for every fix.",
    )
    mqtt_client_id: str = _setting(
        "fieldlink-server",
        "Fixed client id of the ingest session, so the broker keeps what units publish "
        "while the server is down.",
    )
    mqtt_session_expiry_s: int = _setting(
        7 * 24 * 3600, "How long the broker keeps the server's session while it is away."
    )
    mqtt_max_inflight: int = _setting(
        1000, "Outgoing QoS 1 messages in flight at once (paho's ids wrap at 65,535)."
    )
    mqtt_share_group: str = _setting(
        "fieldlink",
        "With FIELDLINK_REDIS_URL: the MQTT v5 shared-subscription group the instances take "
        "the units' messages in ($share/<group>/...), so each message is handled once. Each "
        "instance needs its own FIELDLINK_MQTT_CLIENT_ID.",
    )
    redis_url: str = _setting(
        "",
        "Redis for several server instances, e.g. redis://127.0.0.1:6379/0: Socket.IO "
        "messages between instances, who runs the timers, which instances are alive. Empty: "
        "one instance, nothing shared.",
    )
    redis_lease_s: float = _setting(
        5.0,
        "With FIELDLINK_REDIS_URL: an instance not heard of for this long is dead; its timers "
        "and its share of the broker's messages are taken over by another one.",
    )
    topic_root: str = _setting(DEFAULT_ROOT, "Root of every MQTT topic.")
    unit_mqtt_url: str = _setting(
        "",
        "Broker URL written into unit bundles (`fieldlink units bundle`), as a Pi reaches it, "
        "e.g. mqtts://broker.example:8883; empty: FIELDLINK_MQTT_URL without its user:password.",
    )
    unit_ca_file: str = _setting(
        "",
        "CA certificate copied beside each unit bundle for mqtts://; empty: units trust "
        "their system CAs.",
    )
    broker_password_file: str = _setting(
        "",
        "mosquitto's password file, e.g. /etc/mosquitto/fieldlink/passwd: when set, `fieldlink"
        " units add|bundle|remove` rewrite it (and FIELDLINK_BROKER_ACL_FILE) and run"
        " FIELDLINK_BROKER_RELOAD, so a change takes effect at once; empty: they say what to run.",
    )
    broker_acl_file: str = _setting(
        "", "mosquitto's ACL file, rewritten beside FIELDLINK_BROKER_PASSWORD_FILE; empty: not."
    )
    broker_reload: str = _setting(
        "",
        "Command that makes mosquitto read its files again (it drops a unit whose password"
        " is gone), e.g. `sudo systemctl reload mosquitto`; empty: none is run.",
    )
    async_mode: str = _setting(
        "threading",
        "Socket.IO async mode: threading (more fixes stored per second) or gevent (about twice "
        "the orders per second to hundreds of terminals); see docs/benchmarks.md.",
    )
    secret_key: str = _setting(
        "",
        "Key that signs web sessions; empty: one made once and kept in the database (so "
        "sessions outlive a restart and every instance signs alike).",
    )
    trusted_proxies: int = _setting(
        0,
        "Reverse proxies in front of the server (nginx: 1) whose X-Forwarded-For/-Proto are "
        "believed, so logs name the client and links know https; 0: none, headers ignored.",
    )
    metrics_token: str = _setting(
        "",
        "Token Prometheus must send (`Authorization: Bearer ...`) to read /metrics; empty:"
        " /metrics is open to whoever reaches the port (keep it to the internal network).",
    )
    session_hours: float = _setting(
        12.0, "A web login lasts this long (a shift), then the console asks to sign in again."
    )
    ingest_batch: int = _setting(500, "Most positions written to the store in one insert.")
    ingest_flush_s: float = _setting(0.25, "Longest a received position waits before its write.")
    console_push_s: float = _setting(1.0, "How often the console gets unit position updates.")
    tile_url: str = _setting(
        "", "Map tile URL template for the console, e.g. an in-house tile server; empty: none."
    )
    node_modules: str = _setting(
        "", "Where the browser libraries from npm are; empty: node_modules beside the code."
    )
    incident_categories: str = _setting(
        "urgent,hazmat,help,dispute,report,traffic,search,crowd,lost_person,other",
        "Incident categories, comma-separated; a panic button makes the first one.",
    )
    category_names: str = _setting(
        "",
        "The categories' names on the screens, `code=English/中文` comma-separated, e.g. "
        "`fire=Fire/火警`; unnamed ones read as their code in English and by the built-in "
        "Chinese name.",
    )
    position_stale_s: float = _setting(
        60.0, "A unit whose latest position is older than this is not recommended."
    )
    offline_after_s: float = _setting(
        120.0, "A unit not heard from (position, health, state) for this long is offline."
    )
    road_factor: float = _setting(
        1.4, "Straight-line distance x this = the road distance of the default ETA estimate."
    )
    unit_speeds: str = _setting(
        "patrol_car=11,motorcycle=12.5,guard_post=1.4,foot=1.4,volunteer=1.4",
        "Average speed in m/s per unit kind for the default ETA estimate.",
    )
    osrm_url: str = _setting(
        "",
        "OSRM server for drive times, e.g. http://osrm:5000; empty: straight line x road "
        "factor. On an OSRM error, recommendations fall back to the straight line and say so.",
    )
    osrm_timeout_s: float = _setting(2.0, "Longest wait for OSRM's answer.")
    osrm_shortlist: int = _setting(
        25, "Units nearest by straight line whose drive time is asked of OSRM (1-by-N table)."
    )
    recommend_limit: int = _setting(10, "Units a recommendation lists by default.")
    dispatch_policy: str = _setting(
        "recommendation",
        "Which units a plan sends: recommendation (earliest arrival, by drive time with OSRM; "
        "own grid first on ties), nearest (straight line only) or own_grid (the incident's "
        "grid's units only). `fieldlink simulate` compares them.",
    )
    ack_timeouts_s: str = _setting(
        "1=30,2=60,3=120,4=300",
        "Seconds per incident priority for a unit to accept an order before the next unit "
        "is sent (at the normal duty level; the plans shorten them at higher levels).",
    )
    on_scene_limits_min: str = _setting(
        "*=45,urgent=60,hazmat=120,report=30,search=240,crowd=240,lost_person=240",
        "Minutes a unit may stay on scene before the consoles are alerted, per incident "
        "category (`*`: every other one).",
    )
    plans_file: str = _setting(
        "",
        "TOML file of response plans per duty level (deploy/plans.example.toml); empty: the "
        "built-in plans.",
    )
    arrival_radius_m: float = _setting(
        50.0, "A unit this close to the scene (allowing for its fix's accuracy) is arriving."
    )
    arrival_dwell_s: float = _setting(
        5.0, "Seconds a unit stays within the radius before it is stamped on scene."
    )
    timezone: str = _setting(
        "Asia/Shanghai",
        "The command centre's time zone (IANA name): where its day starts and ends, for "
        "same-day closure and daily figures.",
    )
    coverage_reach_s: float = _setting(
        900.0, "Cold-spot map: a place no available unit reaches within this is black."
    )
    timer_tick_s: float = _setting(0.5, "How often ack deadlines and silent units are checked.")
    alarm_ack_s: float = _setting(
        30.0,
        "An alarm no dispatcher acknowledged on the console within this many seconds is "
        "escalated to the commanders on duty.",
    )
    receipt_interval_s: float = _setting(
        5.0,
        "How often each unit is told up to which fix time its positions are stored (they "
        "leave its outbox only then); alarms and acks are confirmed at once.",
    )
    clock_speedup: float = _setting(
        1.0,
        "For `fieldlink simulate` only: the server's clock runs this many times faster than "
        "wall time, so a simulated day is recorded in its own minutes. 1: wall time.",
    )
    clock_anchor: float = _setting(
        0.0,
        "For `fieldlink simulate` only: the wall time (epoch s) at which the faster clock "
        "and wall time agree.",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from FIELDLINK_<KEY> variables, then explicit overrides (CLI options).

        Every problem is collected before the ConfigError: a mistyped name (with the
        nearest real one), a value of the wrong type, a value out of range.
        """
        env = os.environ if env is None else env
        problems = unknown_variables(env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"FIELDLINK_{f.name.upper()}")
            if raw is not None and raw != "":
                value, problem = _convert(f.name, f.type, raw)
                if problem:
                    problems.append(problem)
                else:
                    values[f.name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        problems.extend(settings.problems())
        if problems:
            raise ConfigError(problems)
        return settings

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def categories(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.incident_categories.split(",") if c.strip())

    def names_of_categories(self) -> dict[str, dict[str, str]]:
        """Every category's name in each language (`rules/categories.py`)."""
        return category_names(self.categories(), parse_names(self.category_names))

    def speeds_ms(self) -> dict[str, float]:
        return _mapping("unit_speeds", self.unit_speeds, str, float)

    def ack_timeouts(self) -> dict[int, float]:
        return _mapping("ack_timeouts_s", self.ack_timeouts_s, int, float)

    def on_scene_limits_s(self) -> dict[str, float]:
        return {
            k: m * 60
            for k, m in _mapping(
                "on_scene_limits_min", self.on_scene_limits_min, str, float
            ).items()
        }

    def problems(self) -> list[str]:
        """Every value the server cannot use, one line each, naming its variable."""
        return [
            problem
            for check in (self._check_links, self._check_web, self._check_dispatch)
            for problem in check()
        ]

    def _check_links(self) -> Iterator[str]:
        if self.async_mode not in ASYNC_MODES:
            yield f"FIELDLINK_ASYNC_MODE={self.async_mode!r}: use one of {', '.join(ASYNC_MODES)}"
        for name in ("mqtt_protocol", "mqtt_bulk_protocol"):
            if getattr(self, name) not in ("5", "3.1.1"):
                yield f"FIELDLINK_{name.upper()}={getattr(self, name)!r}: use 5 or 3.1.1"
        # the unit URL may be empty (derived from the server's); the server's may not
        for name, url in (("mqtt_url", self.mqtt_url), ("unit_mqtt_url", self.unit_mqtt_url)):
            if (url or name == "mqtt_url") and not url.startswith(("mqtt://", "mqtts://")):
                yield f"FIELDLINK_{name.upper()}={url!r}: use mqtt://host:port or mqtts://host:port"
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            yield f"FIELDLINK_REDIS_URL={self.redis_url!r}: use redis://host:port/db or rediss://"
        if self.osrm_url and not self.osrm_url.startswith(("http://", "https://")):
            yield f"FIELDLINK_OSRM_URL={self.osrm_url!r}: use http://host:port of the OSRM server"

    def _check_web(self) -> Iterator[str]:
        if not 0 < self.port < 65536:
            yield f"FIELDLINK_PORT={self.port}: not a TCP port (1-65535)"
        if self.trusted_proxies < 0:
            yield f"FIELDLINK_TRUSTED_PROXIES={self.trusted_proxies}: 0 or more"
        if self.session_hours <= 0:
            yield f"FIELDLINK_SESSION_HOURS={self.session_hours}: give hours above 0"
        try:
            ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            yield f"FIELDLINK_TIMEZONE={self.timezone!r}: use an IANA name such as Asia/Shanghai"

    def _check_dispatch(self) -> Iterator[str]:
        from server.rules.dispatch import POLICIES
        from server.store import UNIT_KINDS

        if not self.categories():
            yield "FIELDLINK_INCIDENT_CATEGORIES is empty: name at least one"
        try:
            unknown = set(parse_names(self.category_names)) - set(self.categories())
        except ValueError as exc:
            yield f"FIELDLINK_CATEGORY_NAMES: {exc}, e.g. fire=Fire/火警"
        else:
            if unknown:
                yield (
                    f"FIELDLINK_CATEGORY_NAMES names {', '.join(sorted(unknown))}: not in "
                    "FIELDLINK_INCIDENT_CATEGORIES"
                )
        try:
            speeds = self.speeds_ms()
        except ConfigError as exc:
            yield from exc.problems
        else:
            missing = [k for k in UNIT_KINDS if k not in speeds]
            if missing or set(speeds) - set(UNIT_KINDS) or min(speeds.values()) <= 0:
                yield (
                    f"FIELDLINK_UNIT_SPEEDS={self.unit_speeds!r}: give a speed above 0 for each "
                    f"of {', '.join(UNIT_KINDS)}"
                )
        try:
            timeouts = self.ack_timeouts()
        except ConfigError as exc:
            yield from exc.problems
        else:
            if set(timeouts) != {1, 2, 3, 4} or min(timeouts.values()) <= 0:
                yield (
                    f"FIELDLINK_ACK_TIMEOUTS_S={self.ack_timeouts_s!r}: give seconds above 0 "
                    "for each priority, e.g. 1=30,2=60,3=120,4=300"
                )
        try:
            limits = self.on_scene_limits_s()
        except ConfigError as exc:
            yield from exc.problems
        else:
            if "*" not in limits or min(limits.values()) <= 0:
                yield (
                    f"FIELDLINK_ON_SCENE_LIMITS_MIN={self.on_scene_limits_min!r}: give minutes "
                    "above 0 for `*` and any category, e.g. *=45,urgent=60"
                )
        if self.dispatch_policy not in POLICIES:
            yield (
                f"FIELDLINK_DISPATCH_POLICY={self.dispatch_policy!r}: use one of "
                f"{', '.join(POLICIES)}"
            )
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                yield f"FIELDLINK_{name.upper()}={getattr(self, name)}: must be > 0"


# settings that make no sense at zero or below
POSITIVE = (
    "redis_lease_s",
    "position_stale_s",
    "offline_after_s",
    "road_factor",
    "timer_tick_s",
    "clock_speedup",
    "alarm_ack_s",
    "receipt_interval_s",
)

# FIELDLINK_* variables read by others than the server's settings, so not mistyped
OTHER_VARIABLES = {
    "FIELDLINK_DEMO_BROKER": "`make demo` / `fieldlink simulate`: embedded, mosquitto or auto",
    "FIELDLINK_TERMINAL_URL": "the kiosk's Chromium: the terminal page it opens",
    "FIELDLINK_POSTGRES_URL": "the test suite: PostgreSQL server it makes its databases on",
    "FIELDLINK_TEST_DB_URL": "the test suite: PostgreSQL server of the current run",
}


def known_variables() -> set[str]:
    """Every FIELDLINK_* name some part of fieldlink reads (server, agent, kiosk, tests)."""
    from edge_agent.config import env_name
    from edge_agent.config import reference as agent_reference

    names = {var for var, _, _ in reference()} | set(OTHER_VARIABLES)
    return names | {env_name(section, key) for section, key, _, _ in agent_reference()}


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A problem for every FIELDLINK_* variable nothing reads, naming the nearest real one."""
    known = known_variables()
    problems = []
    for name in sorted(n for n in env if n.startswith("FIELDLINK_") and n not in known):
        # compared without the common prefix, which would make every name look near
        nearest = difflib.get_close_matches(name[10:], [k[10:] for k in known], n=1, cutoff=0.6)
        hint = f"did you mean FIELDLINK_{nearest[0]}?" if nearest else "see `fieldlink config`"
        problems.append(f"{name} is not a fieldlink setting: {hint}")
    return problems


def _convert(name: str, kind: Any, raw: str) -> tuple[Any, str | None]:
    """(value, None) or (None, the problem naming the variable)."""
    target = {"int": int, "float": float, "str": str}[kind if isinstance(kind, str) else "str"]
    try:
        return target(raw), None
    except ValueError:
        return None, f"FIELDLINK_{name.upper()}={raw!r} is not a valid {target.__name__}"


def _mapping(name: str, raw: str, key: type, value: type) -> dict:
    """`a=1,b=2` as a dict, or a ConfigError naming the variable."""
    out = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        k, sep, v = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key(k.strip())] = value(v)
        except ValueError:
            raise ConfigError(
                [f"FIELDLINK_{name.upper()}: {item!r} is not KEY=NUMBER (as in {raw!r})"]
            ) from None
    return out


def reference() -> list[tuple[str, Any, str]]:
    """(variable, default, doc) for every setting: the README's configuration table."""
    return [(f"FIELDLINK_{f.name.upper()}", f.default, f.metadata["doc"]) for f in fields(Settings)]
