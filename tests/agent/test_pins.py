"""The pin factory: chosen per board and per installed library, and refused in words that
say what to install; pins checked free before the agent starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gpiozero import InputDevice

from edge_agent import pins
from edge_agent.cli import main
from edge_agent.pins import PinError, choose_factory, claim_pins, open_factory, prepare

PI5 = "Raspberry Pi 5 Model B Rev 1.0"
PI4 = "Raspberry Pi 4 Model B Rev 1.4"


def installed(*modules: str):
    return lambda module: module in modules


def test_auto_takes_lgpio_first_and_falls_back_on_older_pis():
    assert choose_factory("auto", PI4, installed("lgpio", "RPi.GPIO")) == "lgpio"
    assert choose_factory("auto", PI4, installed("RPi.GPIO", "pigpio")) == "rpigpio"
    assert choose_factory("auto", PI4, installed("pigpio")) == "pigpio"
    assert choose_factory("auto", "", installed("lgpio")) == "lgpio"


def test_a_pi5_only_ever_gets_lgpio():
    assert choose_factory("auto", PI5, installed("lgpio", "RPi.GPIO")) == "lgpio"
    with pytest.raises(PinError, match=r"no GPIO library for Raspberry Pi 5.*python3-lgpio"):
        choose_factory("auto", PI5, installed("RPi.GPIO", "pigpio"))
    with pytest.raises(PinError, match="rpigpio cannot drive the pins of a Raspberry Pi 5"):
        choose_factory("rpigpio", PI5, installed("RPi.GPIO"))


def test_a_named_factory_whose_library_is_missing_says_what_to_install():
    with pytest.raises(PinError, match="needs pigpio: sudo apt-get install python3-pigpio"):
        choose_factory("pigpio", PI4, installed("lgpio"))
    with pytest.raises(PinError, match="no GPIO library for this board"):
        choose_factory("auto", "", installed())
    assert choose_factory("mock", PI5, installed()) == "mock"


def test_gpiozero_s_own_variable_picks_in_auto_and_a_wrong_one_is_named(mock_gpio):
    assert prepare("auto", {"panic.pin": 17}, env={"GPIOZERO_PIN_FACTORY": "mock"}) == "mock"
    with pytest.raises(PinError, match="GPIOZERO_PIN_FACTORY=native"):
        prepare("auto", {}, env={"GPIOZERO_PIN_FACTORY": "native"})


def test_a_pin_in_use_is_named_before_the_agent_starts(mock_gpio):
    held = InputDevice(27)  # what another program, or a kernel overlay, would hold
    try:
        with pytest.raises(PinError, match=r"signals\.ack_pin = 27: GPIOPinInUse"):
            claim_pins(open_factory("mock"), {"panic.pin": 17, "signals.ack_pin": 27})
    finally:
        held.close()
    claim_pins(open_factory("mock"), {"panic.pin": 17, "signals.ack_pin": 27})


def test_validate_config_names_the_factory_or_what_is_missing(tmp_path, monkeypatch, mock_gpio):
    config = tmp_path / "agent.toml"
    config.write_text('[unit]\nid = "car-1"\n[gpio]\npin_factory = "mock"\n')
    ok = CliRunner().invoke(main, ["--config", str(config), "--validate-config"])
    assert ok.exit_code == 0, ok.output
    assert "GPIO through mock, pins 17 free" in ok.output
    # what a Pi without its GPIO package would say (on an ARM machine lgpio is installed)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(pins, "module_present", lambda module: module != "lgpio")
    config.write_text('[unit]\nid = "car-1"\n[gpio]\npin_factory = "lgpio"\n')
    missing = CliRunner().invoke(main, ["--config", str(config), "--validate-config"])
    assert missing.exit_code == 2
    assert "pin factory lgpio needs lgpio: sudo apt-get install python3-lgpio" in missing.output
