"""Broker accounts for units: passwords, mosquitto's password and ACL files, agent bundles.

Every unit logs in to mosquitto as its own id. The store keeps only the password hash, in
the exact form mosquitto's password file wants, so `fieldlink broker passwords` can write
that file at any time; the clear password exists only when it is issued (`units add`,
`units bundle`). A bundle made later therefore issues a new password (see `issue_password`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mqtt_link import BrokerAddress
from server.config import Settings
from server.ingest import owntracks
from server.store import IN_FLEET, Unit
from wire.topics import CHANNELS

log = logging.getLogger(__name__)

# mosquitto 2.0's `$7$` hash: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key, both base64
# (src/password_mosq.c; checked against mosquitto_passwd 2.0.11). 101 rounds is
# mosquitto_passwd's own default. More rounds would only slow every unit's login: key
# stretching protects guessable passwords, and ours are 256 random bits.
HASH_ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 32
RELOAD_TIMEOUT_S = 30


class ProvisioningError(ValueError):
    """Something provisioning cannot do; the text says what to change."""


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """`password` as mosquitto 2.0's password file holds it: `$7$<rounds>$<salt>$<hash>`."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS, dklen=64)
    b64 = base64.b64encode
    return f"$7${HASH_ITERATIONS}${b64(salt).decode()}${b64(key).decode()}"


def issue_password(unit: Unit) -> str:
    """A new random broker password for `unit`; its hash replaces the old one.

    The clear password is returned, never stored: a database copy must not let anyone
    log in as a unit. The old password keeps working until the broker's password file
    is written again and mosquitto reloads it.
    """
    password = secrets.token_urlsafe(PASSWORD_BYTES)  # URL-safe: goes into mqtt:// URLs as is
    unit.mqtt_password_hash = mosquitto_hash(password)
    unit.save(only=[Unit.mqtt_password_hash])
    log.info("issued a new broker password for unit %s", unit.id)
    return password


@dataclass(frozen=True)
class ServerAccount:
    """The server's own broker account, from the user:password in FIELDLINK_MQTT_URL."""

    username: str
    password: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerAccount:
        address = BrokerAddress.parse(settings.mqtt_url)
        if not address.username or not address.password:
            raise ProvisioningError(
                "FIELDLINK_MQTT_URL has no user:password; the locked broker admits no one"
                " without them: set e.g. FIELDLINK_MQTT_URL="
                "mqtt://fieldlink-server:<a long random password>@127.0.0.1:1883"
            )
        return cls(address.username, address.password)


def password_file(units: Iterable[Unit], server: ServerAccount) -> str:
    """mosquitto's password file: the server's account, then every unit that has one."""
    lines = [f"{server.username}:{mosquitto_hash(server.password)}"]
    for unit in units:
        if unit.id == server.username:
            raise ProvisioningError(
                f"unit {unit.id!r} has the server's broker user name: rename the user in"
                " FIELDLINK_MQTT_URL, or the unit would log in with the server's rights"
            )
        if unit.mqtt_password_hash:
            lines.append(f"{unit.id}:{unit.mqtt_password_hash}")
        else:
            log.warning(
                "unit %s has no broker password and is left out; issue one with"
                " `fieldlink units bundle %s --output FILE`",
                unit.id,
                unit.id,
            )
    return "\n".join(lines) + "\n"


def fleet() -> Iterable[Unit]:
    """The units the broker admits: every unit not removed, in id order."""
    return Unit.select().where(IN_FLEET).order_by(Unit.id)


def sync_broker(settings: Settings) -> str:
    """Rewrite FIELDLINK_BROKER_PASSWORD_FILE (and _ACL_FILE) from the store and run
    FIELDLINK_BROKER_RELOAD; what was done, in a line. On reload mosquitto admits new
    passwords and drops every connected unit whose password is gone."""
    account = ServerAccount.from_settings(settings)
    text = password_file(fleet(), account)
    write_file(Path(settings.broker_password_file), text)
    done = [f"wrote {settings.broker_password_file} ({len(text.splitlines())} accounts)"]
    if settings.broker_acl_file:
        write_file(Path(settings.broker_acl_file), acl_file(settings.topic_root, account), 0o644)
        done.append(f"wrote {settings.broker_acl_file}")
    if settings.broker_reload:
        try:
            subprocess.run(
                shlex.split(settings.broker_reload),
                check=True,
                capture_output=True,
                text=True,
                timeout=RELOAD_TIMEOUT_S,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            said = getattr(exc, "stderr", None) or exc
            raise ProvisioningError(
                f"the files are written, but FIELDLINK_BROKER_RELOAD={settings.broker_reload!r}"
                f" failed ({str(said).strip()}): reload mosquitto by hand"
            ) from None
        done.append(f"ran {settings.broker_reload}")
    else:
        done.append("the broker reads them when it is next reloaded (FIELDLINK_BROKER_RELOAD)")
    return "; ".join(done)


def acl_file(topic_root: str, server: ServerAccount) -> str:
    """mosquitto's ACL file: each unit only its own topics, the server all units' topics.

    `pattern` lines apply to every user with %u replaced by the user name, which is the
    unit id, so one file serves any number of units and needs no rewrite when one is added.
    The channels and their direction come from the wire protocol's table.
    """
    units = f"{topic_root}/units"
    lines = [
        "# fieldlink broker ACL, written by `fieldlink broker acl`; do not edit by hand.",
        "# Anything not granted here is denied. Patterns apply to every account, %u = user.",
    ]
    for channel, rule in CHANNELS.items():
        access = "write" if rule.upstream else "read"
        where = f"{units}/%u/{channel.value}" if rule.per_unit else f"{topic_root}/{channel.value}"
        lines.append(f"pattern {access} {where}")
    lines += [
        "# phones running OwnTracks: their own reports and transitions, their own commands",
        *(f"pattern write {f.replace('+', '%u', 1)}" for f in owntracks.MQTT_FILTERS),
        "pattern read owntracks/%u/+/cmd",
    ]
    lines += [
        "",
        "# the server: reads what every unit sends, writes every unit's orders",
        f"user {server.username}",
        f"topic read {units}/+/+",
        # each instance's claim on its client id (server/ingest/sessions.py: ClientIdClaim)
        f"topic readwrite {topic_root}/instances/+",
        *(f"topic read {f}" for f in owntracks.MQTT_FILTERS),
        "topic write owntracks/+/+/cmd",
    ]
    lines += [
        f"topic write {units}/+/{channel.value}"
        if rule.per_unit
        else f"topic write {topic_root}/{channel.value}"
        for channel, rule in CHANNELS.items()
        if not rule.upstream
    ]
    return "\n".join(lines) + "\n"


def unit_broker_url(settings: Settings) -> str:
    """The broker URL units use, without credentials: FIELDLINK_UNIT_MQTT_URL, else the
    server's own URL without its user:password."""
    parts = urlsplit(settings.unit_mqtt_url or settings.mqtt_url)
    host = parts.hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") and not settings.unit_mqtt_url:
        log.warning(
            "units will be told to reach the broker at %s, which on a Pi is the Pi itself:"
            " set FIELDLINK_UNIT_MQTT_URL, e.g. mqtts://broker.example:8883",
            host,
        )
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}"


def with_credentials(url: str, username: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{rest}"


def agent_bundle(values: dict[str, dict[str, Any]], reference: Iterable[tuple]) -> str:
    """The agent's TOML file with `values` ({section: {key: value}}), each key with its doc;
    None values are left out (the agent's default applies).

    `reference` is edge_agent.config.reference(): (section, key, default, doc) rows, so the
    file follows the agent's own declaration of its settings.
    """
    docs = {(section, key): doc for section, key, _default, doc in reference}
    lines = [
        "# fieldlink edge agent settings for one unit, written by `fieldlink units bundle`",
        f"# on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "# It holds this unit's broker password: keep it mode 0600, owned by the agent's user.",
        "# Install as /etc/fieldlink/agent.toml; keys not set here keep the agent's defaults",
        "# (firmware_config/agent.example.toml). Any key can be overridden on the Pi by",
        "# FIELDLINK_<SECTION>_<KEY> in /etc/fieldlink/agent.env, e.g. FIELDLINK_GPSD_PORT=2948.",
    ]
    for section, table in values.items():
        given = {key: value for key, value in table.items() if value is not None}
        if given:
            lines += ["", f"[{section}]"]
        for key, value in given.items():
            lines.append(f"# {docs[(section, key)]}")
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # every escape json.dumps produces (\" \\ \n \uXXXX) is valid in a TOML basic string
    return json.dumps(str(value))


def write_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` atomically with `mode` set before any byte is written.

    Atomic because mosquitto may reload (SIGHUP) at any moment and must never read half
    a password file; the mode is set first so a secret is never readable by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def owntracks_config(unit_id: str, password: str, broker_url: str) -> dict[str, Any]:
    """The OwnTracks app's configuration (an `.otrc` file) for a phone reporting as
    `unit_id` over MQTT: its own broker account, topic `owntracks/<unit>/phone`, moves
    reported as they happen (`monitoring` 2)."""
    address = BrokerAddress.parse(broker_url)
    return {
        "_type": "configuration",
        "mode": 0,  # MQTT
        "host": address.host,
        "port": address.port,
        "tls": address.tls,
        "auth": True,
        "username": unit_id,
        "password": password,
        "clientId": unit_id,
        "deviceId": "phone",
        "tid": unit_id[-2:],
        "monitoring": 2,
        "cleanSession": False,
        "keepalive": 60,
    }


def owntracks_link(config: dict[str, Any]) -> str:
    """The link the app takes a configuration from (its QR code): owntracks:///config."""
    inline = base64.b64encode(json.dumps(config).encode()).decode()
    return f"owntracks:///config?inline={quote(inline, safe='')}"
