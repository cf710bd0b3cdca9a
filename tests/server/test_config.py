"""Server settings fail loud: every problem at once, mistyped names with the nearest real one."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness.server import FIELDLINK
from server.config import ConfigError, Settings, known_variables, reference


def test_defaults_are_valid_and_an_empty_value_means_the_default() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"FIELDLINK_PORT": ""}).port == 8080


def test_every_problem_is_reported_at_once_each_naming_its_variable() -> None:
    env = {
        "FIELDLINK_PORT": "eighty",
        "FIELDLINK_TIMEZONE": "Mars/Olympus",
        "FIELDLINK_ALARM_ACK_S": "0",
        "FIELDLINK_ACK_TIMEOUTS_S": "1=30",
        "FIELDLINK_MQTT_URL": "tcp://broker",
        "FIELDLINK_ON_SCENE_LIMITS_MIN": "urgent=60",  # no `*` for the rest
        "FIELDLINK_CATEGORY_NAMES": "fire=Fire",  # no Chinese name
    }
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    problems = err.value.problems
    assert len(problems) == 7
    for variable in env:
        assert sum(p.startswith(variable) for p in problems) == 1, (variable, problems)


def test_a_category_is_named_by_the_centre_or_else_by_its_code_and_the_built_in_chinese() -> None:
    settings = Settings.from_env(
        {
            "FIELDLINK_INCIDENT_CATEGORIES": "fire,lost_person,unnamed_thing",
            "FIELDLINK_CATEGORY_NAMES": "fire = Fire / 火警",
        }
    )
    assert settings.names_of_categories() == {
        "fire": {"en": "Fire", "zh": "火警"},
        "lost_person": {"en": "lost person", "zh": "走失人员"},
        "unnamed_thing": {"en": "unnamed thing", "zh": "unnamed thing"},
    }
    with pytest.raises(ConfigError, match="names flood: not in FIELDLINK_INCIDENT_CATEGORIES"):
        Settings.from_env({"FIELDLINK_CATEGORY_NAMES": "flood=Flood/水灾"})


def test_a_mistyped_variable_is_refused_with_the_nearest_real_name() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"FIELDLINK_ALARM_ACK": "30", "FIELDLINK_DB_URI": "sqlite:///x.db"})
    assert err.value.problems == [
        "FIELDLINK_ALARM_ACK is not a fieldlink setting: did you mean FIELDLINK_ALARM_ACK_S?",
        "FIELDLINK_DB_URI is not a fieldlink setting: did you mean FIELDLINK_DB_URL?",
    ]
    with pytest.raises(ConfigError, match="see `fieldlink config`"):
        Settings.from_env({"FIELDLINK_XYZZY": "1"})


def test_variables_of_the_agent_kiosk_demo_and_suite_are_not_mistakes() -> None:
    env = {
        "FIELDLINK_UNIT_ID": "car-1",
        "FIELDLINK_GPSD_PORT": "2947",
        "FIELDLINK_TERMINAL_URL": "https://x/terminal",
        "FIELDLINK_DEMO_BROKER": "embedded",
    }
    assert Settings.from_env(env) == Settings()
    assert {var for var, _, _ in reference()} <= known_variables()


def test_validate_checks_the_environment_without_starting_anything(tmp_path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FIELDLINK_")}
    bad_plans = tmp_path / "plans.toml"
    bad_plans.write_text("[storm]\n")

    def validate(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [FIELDLINK, "config", "--validate"],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    good = validate(FIELDLINK_PORT="9000")
    assert good.returncode == 0 and "OK: 1 FIELDLINK_* variable(s) set" in good.stdout
    bad = validate(FIELDLINK_PROT="9000", FIELDLINK_SESSION_HOURS="-1")
    assert bad.returncode == 2
    assert "2 problem(s)" in bad.stderr and "did you mean FIELDLINK_PORT?" in bad.stderr
    assert "FIELDLINK_SESSION_HOURS=-1.0: give hours above 0" in bad.stderr
    plans = validate(FIELDLINK_PLANS_FILE=str(bad_plans))
    assert plans.returncode == 2 and "unknown duty level(s) storm" in plans.stderr
    assert not list(tmp_path.glob("*.db"))  # nothing was started or created
