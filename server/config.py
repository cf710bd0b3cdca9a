"""Server settings: every key declared once with its default and doc; read from FIELDLINK_* env."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from wire import DEFAULT_ROOT

ASYNC_MODES = ("threading", "gevent")


class ConfigError(ValueError):
    """A setting with a value the server cannot use; the text names the variable."""


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("127.0.0.1", "Address the HTTP/Socket.IO server listens on.")
    port: int = _setting(8080, "Port the HTTP/Socket.IO server listens on.")
    db_url: str = _setting(
        "sqlite:///fieldlink.db",
        "Database URL (peewee playhouse.db_url): sqlite:///path or postgresql://user@host/db.",
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
    async_mode: str = _setting(
        "threading", "Socket.IO async mode: threading or gevent (see docs/benchmarks.md)."
    )
    secret_key: str = _setting("", "Flask secret key; a random one per start when empty.")
    ingest_batch: int = _setting(500, "Most positions written to the store in one insert.")
    ingest_flush_s: float = _setting(0.25, "Longest a received position waits before its write.")
    console_push_s: float = _setting(1.0, "How often the console gets unit position updates.")
    tile_url: str = _setting(
        "", "Map tile URL template for the console, e.g. an in-house tile server; empty: none."
    )
    node_modules: str = _setting(
        "", "Where the browser libraries from npm are; empty: node_modules beside the code."
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from FIELDLINK_<KEY> variables, then explicit overrides (CLI options)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"FIELDLINK_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def check(self) -> None:
        if self.async_mode not in ASYNC_MODES:
            raise ConfigError(
                f"FIELDLINK_ASYNC_MODE={self.async_mode!r}: use one of {', '.join(ASYNC_MODES)}"
            )
        for name in ("mqtt_protocol", "mqtt_bulk_protocol"):
            if getattr(self, name) not in ("5", "3.1.1"):
                raise ConfigError(
                    f"FIELDLINK_{name.upper()}={getattr(self, name)!r}: use 5 or 3.1.1"
                )
        # the unit URL may be empty (derived from the server's); the server's may not
        for name, url in (("mqtt_url", self.mqtt_url), ("unit_mqtt_url", self.unit_mqtt_url)):
            if (url or name == "mqtt_url") and not url.startswith(("mqtt://", "mqtts://")):
                raise ConfigError(
                    f"FIELDLINK_{name.upper()}={url!r}: use mqtt://host:port or mqtts://host:port"
                )
        if not 0 < self.port < 65536:
            raise ConfigError(f"FIELDLINK_PORT={self.port}: not a TCP port")


def _convert(name: str, kind: Any, raw: str) -> Any:
    target = {"int": int, "float": float, "str": str}[kind if isinstance(kind, str) else "str"]
    try:
        return target(raw)
    except ValueError:
        raise ConfigError(
            f"FIELDLINK_{name.upper()}={raw!r} is not a valid {target.__name__}"
        ) from None


def reference() -> list[tuple[str, Any, str]]:
    """(variable, default, doc) for every setting: the README's configuration table."""
    return [(f"FIELDLINK_{f.name.upper()}", f.default, f.metadata["doc"]) for f in fields(Settings)]
