"""Agent settings: the example file, errors that name the key, environment overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import main
from edge_agent.config import ConfigError, env_name, load, reference

EXAMPLE = Path(__file__).resolve().parents[2] / "firmware_config" / "agent.example.toml"


def test_example_file_loads_and_documents_every_key():
    settings = load(EXAMPLE, env={})
    assert settings.unit.id == "car-12" and settings.client_id == "agent-car-12"
    text = EXAMPLE.read_text()
    written = tomllib.loads(text)
    for section, key, default, doc in reference():
        assert env_name(section, key) in text, f"{section}.{key} is not in the example"
        assert " ".join(doc.split()[:6]) in " ".join(text.replace("\n# ", " ").split()), key
        if (section, key) != ("unit", "id"):  # the one value the example must invent
            assert written[section].get(key, default) == default, f"{section}.{key} differs"


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    path = _write(
        tmp_path,
        '[unit]\nid = "u1"\n[mqtt]\nprotcol = "5"\nkeepalive_s = "30"\n'
        "[panic]\npin = true\n[bogus]\n",
    )
    with pytest.raises(ConfigError) as err:
        load(path, env={})
    problems = "\n".join(err.value.problems)
    assert "unknown key mqtt.protcol" in problems and "protocol" in problems  # the right name
    assert "mqtt.keepalive_s = '30': must be a whole number" in problems
    assert "panic.pin = True: must be a whole number" in problems
    assert "unknown section [bogus]" in problems


def test_checks_of_values_and_related_keys(tmp_path):
    path = _write(
        tmp_path, '[unit]\nid = "no spaces"\n[mqtt]\nurl = "http://x"\n[signals]\nbuzzer_pin = 17\n'
    )
    with pytest.raises(ConfigError) as err:
        load(path, env={})
    problems = "\n".join(err.value.problems)
    assert "unit.id = 'no spaces'" in problems and "mqtt.url" in problems
    assert "panic.pin and signals.buzzer_pin use the same pin 17" in problems


def test_environment_overrides_the_file(tmp_path):
    path = _write(tmp_path, '[unit]\nid = "u1"\n[gpsd]\nport = 2947\n')
    env = {
        "FIELDLINK_MQTT_URL": "mqtts://car:pw@broker.example",
        "FIELDLINK_GPSD_HOST": "gps",
        "FIELDLINK_GPSD_PORT": "3000",
        "FIELDLINK_UNIT_ID": "car-9",
        "FIELDLINK_PANIC_DRILL": "true",
        "FIELDLINK_SIGNALS_LED_PIN": "5",
    }
    settings = load(path, env=env)
    assert settings.mqtt.url == "mqtts://car:pw@broker.example"
    assert (settings.gpsd.host, settings.gpsd.port) == ("gps", 3000)
    assert settings.unit.id == "car-9" and settings.panic.drill and settings.signals.led_pin == 5
    with pytest.raises(ConfigError, match="FIELDLINK_GPSD_PORT = 'x': must be a whole number"):
        load(path, env={"FIELDLINK_GPSD_PORT": "x"})


def test_validate_config_flag(tmp_path, monkeypatch, mock_gpio):
    monkeypatch.delenv("FIELDLINK_UNIT_ID", raising=False)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")  # no GPIO here: gpiozero's fake pins
    good = CliRunner().invoke(main, ["--config", str(EXAMPLE), "--validate-config"])
    assert good.exit_code == 0 and "OK" in good.output
    bad = CliRunner().invoke(
        main, ["--config", str(_write(tmp_path, "[unit]\nkind = 'car'\n")), "--validate-config"]
    )
    assert bad.exit_code == 2
    assert "unit.id is required" in bad.output and "unit.kind = 'car'" in bad.output
    assert tomllib.loads(EXAMPLE.read_text())["mqtt"]["max_inflight"] < 65535
