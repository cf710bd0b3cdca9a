"""Provisioning without a broker: credentials, the stored hash, bundles, broker files."""

from __future__ import annotations

import base64
import sqlite3
import stat
import subprocess

import pytest

from edge_agent import config as agent_config
from mqtt_link import BrokerAddress
from server.commands.provisioning import mosquitto_hash
from server.store import Position, Unit, create_unit, db, insert_positions, open_database
from tests.locked_broker import add_unit, fieldlink

SERVER_URL = "mqtt://fieldlink-server:server-secret@127.0.0.1:1883"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {
        "FIELDLINK_DB_URL": f"sqlite:///{tmp_path / 'fieldlink.db'}",
        "FIELDLINK_MQTT_URL": SERVER_URL,
        "FIELDLINK_UNIT_MQTT_URL": "mqtts://broker.example:8883",
        "FIELDLINK_UNIT_CA_FILE": "",
    }


def stored_hash(env: dict[str, str], unit_id: str) -> str:
    open_database(env["FIELDLINK_DB_URL"])
    with db.connection_context():
        return Unit.get_by_id(unit_id).mqtt_password_hash


def matches(password: str, stored: str) -> bool:
    """Check `password` against a `$7$` hash the way mosquitto does: same salt, same hash."""
    salt = base64.b64decode(stored.split("$")[3])
    return mosquitto_hash(password, salt) == stored


def test_the_hash_is_the_one_mosquitto_passwd_writes(tmp_path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "u", "s3cret"], check=True)
    written = passwd.read_text().strip().split(":", 1)[1]
    assert written.startswith("$7$101$")
    assert matches("s3cret", written) and not matches("s3cret!", written)


def test_units_add_prints_credentials_and_stores_only_their_hash(env, tmp_path) -> None:
    unit = add_unit("car-1", env)
    assert unit["mqtt_username"] == "car-1" and len(unit["mqtt_password"]) >= 40
    assert matches(unit["mqtt_password"], stored_hash(env, "car-1"))
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("fieldlink.db*"))  # with the WAL
    assert unit["mqtt_password"].encode() not in stored


def test_units_add_refuses_the_servers_broker_user(env) -> None:
    done = fieldlink("units", "add", "fieldlink-server", "--kind", "foot", env=env)
    assert done.returncode != 0 and "server's broker user" in done.stderr


def test_an_older_database_gets_the_credentials_column_and_keeps_its_rows(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_database(url)
    with db.connection_context():
        create_unit("car-1", "patrol_car")
        insert_positions([{"unit_id": "car-1", "ts": 1.0, "lat": 1, "lon": 2, "received_at": 1}])
    with sqlite3.connect(tmp_path / "old.db") as old:  # as the release before credentials
        old.execute("ALTER TABLE unit DROP COLUMN mqtt_password_hash")

    open_database(url)
    with db.connection_context():
        assert Unit.get_by_id("car-1").mqtt_password_hash is None
        assert Position.select().count() == 1
    open_database(url)  # the next start finds the column and leaves it be


def test_a_bundle_is_a_valid_agent_config_with_a_fresh_password(env, tmp_path) -> None:
    printed = add_unit("kiosk-7", env, kind="guard_post")["mqtt_password"]
    bundle = tmp_path / "out" / "kiosk-7.toml"
    done = fieldlink(
        "units", "bundle", "kiosk-7", "--output", str(bundle), "--gpsd-host", "gps.local",
        "--gpsd-port", "2948", "--panic-pin", "5", "--buzzer-pin", "6", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert "FIELDLINK_<SECTION>_<KEY>" in bundle.read_text()

    settings = agent_config.load(bundle, env={})
    address = BrokerAddress.parse(settings.mqtt.url)
    assert (settings.unit.id, settings.unit.kind) == ("kiosk-7", "guard_post")
    assert (address.host, address.port, address.tls) == ("broker.example", 8883, True)
    assert address.username == "kiosk-7" and address.password != printed
    assert matches(address.password, stored_hash(env, "kiosk-7"))
    assert (settings.gpsd.host, settings.gpsd.port) == ("gps.local", 2948)
    assert (settings.panic.pin, settings.signals.buzzer_pin) == (5, 6)
    assert settings.signals.ack_pin is None and settings.mqtt.ca_file == ""


def test_a_bundle_is_one_file_with_the_ca_inline(env, tmp_path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n...\n")
    env["FIELDLINK_UNIT_CA_FILE"] = str(ca)
    add_unit("car-1", env)
    bundle = tmp_path / "out" / "car-1.toml"
    assert fieldlink("units", "bundle", "car-1", "-o", str(bundle), env=env).returncode == 0
    assert agent_config.load(bundle, env={}).mqtt.ca_pem == ca.read_text()
    assert [p.name for p in bundle.parent.iterdir()] == ["car-1.toml"]


def test_bundle_errors_say_what_to_do_and_change_nothing(env, tmp_path) -> None:
    out = tmp_path / "car-1.toml"
    unknown = fieldlink("units", "bundle", "car-1", "-o", str(out), env=env)
    assert unknown.returncode != 0 and "fieldlink units add car-1" in unknown.stderr

    add_unit("car-1", env)
    before = stored_hash(env, "car-1")
    bad_pin = fieldlink("units", "bundle", "car-1", "-o", str(out), "--panic-pin", "40", env=env)
    assert bad_pin.returncode != 0 and "panic.pin = 40" in bad_pin.stderr
    assert not out.exists() and stored_hash(env, "car-1") == before

    no_ca = fieldlink(
        "units", "bundle", "car-1", "-o", str(out), env=env | {"FIELDLINK_UNIT_CA_FILE": "/nope"}
    )
    assert no_ca.returncode != 0 and "FIELDLINK_UNIT_CA_FILE" in no_ca.stderr


def test_broker_files_hold_every_account_and_the_per_unit_acl(env, tmp_path) -> None:
    add_unit("car-1", env)
    add_unit("car-2", env)
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    assert fieldlink("broker", "passwords", "-o", str(passwd), env=env).returncode == 0
    assert fieldlink("broker", "acl", "-o", str(acl), env=env).returncode == 0

    users = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert list(users) == ["fieldlink-server", "car-1", "car-2"]
    assert matches("server-secret", users["fieldlink-server"])
    assert users["car-1"] == stored_hash(env, "car-1")
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600

    rules = [line for line in acl.read_text().splitlines() if line and line[0] != "#"]
    units = "fieldlink/v1/units"
    assert rules == [
        *(f"pattern write {units}/%u/{c}" for c in ("position", "alarm", "ack", "state", "health")),
        *(f"pattern read {units}/%u/{c}" for c in ("orders", "receipt", "call")),
        "pattern read fieldlink/v1/server",
        "pattern write owntracks/%u/+",  # phones running OwnTracks
        "pattern write owntracks/%u/+/event",
        "pattern read owntracks/%u/+/cmd",
        "user fieldlink-server",
        f"topic read {units}/+/+",
        "topic readwrite fieldlink/v1/instances/+",
        "topic read owntracks/+/+",
        "topic read owntracks/+/+/event",
        "topic write owntracks/+/+/cmd",
        *(f"topic write {units}/+/{c}" for c in ("orders", "receipt", "call")),
        "topic write fieldlink/v1/server",
    ]


def test_broker_files_need_the_servers_account_in_the_url(env, tmp_path) -> None:
    env["FIELDLINK_MQTT_URL"] = "mqtt://127.0.0.1:1883"
    for what in ("passwords", "acl"):
        done = fieldlink("broker", what, "-o", str(tmp_path / what), env=env)
        assert done.returncode != 0 and "FIELDLINK_MQTT_URL has no user:password" in done.stderr
        assert not (tmp_path / what).exists()
