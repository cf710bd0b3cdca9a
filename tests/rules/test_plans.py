"""Response plans: what an incident gets, by duty level, built in or from a TOML file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.config import Settings
from server.rules.dispatch import RESPONDING_KINDS
from server.rules.plans import BUILT_IN, PlanError, ResponsePlans, Slot, load_plans

ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = Settings().categories()
TIMEOUTS = {1: 30.0, 2: 60.0, 3: 120.0, 4: 300.0}
BUILT = ResponsePlans(BUILT_IN, TIMEOUTS)


def plans_from(tmp_path: Path, text: str) -> ResponsePlans:
    path = tmp_path / "plans.toml"
    path.write_text(text)
    return load_plans(str(path), CATEGORIES, TIMEOUTS)


def test_a_guard_post_panic_gets_two_patrol_units_and_the_nearest_other_post() -> None:
    plan = BUILT.plan_for("normal", "urgent", 1, guard_panic=True)
    assert plan.slots == (Slot(RESPONDING_KINDS, 2), Slot(frozenset({"guard_post"}), 1))


def test_the_most_specific_plan_wins(tmp_path) -> None:
    plans = plans_from(
        tmp_path,
        """
[normal]
[[normal.plans]]
match = "*"
units = [{ kinds = ["patrol_car"], count = 1 }]
[[normal.plans]]
match = "*/1"
units = [{ kinds = ["patrol_car"], count = 2 }]
[[normal.plans]]
match = "hazmat"
units = [{ kinds = ["patrol_car"], count = 3 }]
[[normal.plans]]
match = "hazmat/1"
units = [{ kinds = ["patrol_car"], count = 4 }]
[[normal.plans]]
match = "guard_panic"
units = [{ kinds = ["motorcycle"], count = 5 }]
""",
    )

    def count(category: str, priority: int, panic: bool = False) -> int:
        return plans.plan_for("normal", category, priority, panic).slots[0].count

    assert count("hazmat", 1, panic=True) == 5
    assert count("hazmat", 1) == 4
    assert count("hazmat", 2) == 3
    assert count("help", 1) == 2
    assert count("help", 3) == 1


def test_higher_duty_levels_send_more_and_wait_less() -> None:
    assert BUILT.ack_timeout_s("normal", 1) == 30
    assert BUILT.ack_timeout_s("reinforced", 1) == pytest.approx(20.1)
    assert BUILT.ack_timeout_s("wartime", 1) == 15
    normal = BUILT.plan_for("normal", "help", 1, False).slots[0].count
    wartime = BUILT.plan_for("wartime", "help", 1, False).slots[0].count
    assert wartime > normal


def test_the_example_file_loads_and_replaces_only_the_levels_it_defines() -> None:
    plans = load_plans(str(ROOT / "deploy" / "plans.example.toml"), CATEGORIES, TIMEOUTS)
    assert plans.plan_for("normal", "hazmat", 2, False).slots[0].count == 3
    assert plans.levels["wartime"] == BUILT_IN["wartime"]  # not in the file: built in
    public = plans.public(CATEGORIES)
    assert public["categories"] == list(CATEGORIES)
    assert public["duty_levels"]["normal"]["ack_timeout_s"]["1"] == 30
    assert {"match": "*", "units": [{"kinds": ["motorcycle", "patrol_car"], "count": 1}]} in (
        public["duty_levels"]["normal"]["plans"]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[peacetime]\nplans = []", "unknown duty level"),
        ("[normal\n", "plans file"),
        (
            '[normal]\n[[normal.plans]]\nmatch = "*/1"\nunits = [{kinds=["tank"], count=1}]',
            "Must be one of: patrol_car",
        ),
        (
            '[normal]\n[[normal.plans]]\nmatch = "*/1"\nunits = [{kinds=["foot"], count=1}]',
            'match = "*"',
        ),
        (
            '[normal]\n[[normal.plans]]\nmatch = "nosuch/9"\nunits = [{kinds=["foot"], count=1}]',
            "'nosuch/9'",
        ),
        ('[normal]\n[[normal.plans]]\nmatch = "*"\nunits = [{kinds=["foot"], count=0}]', "count"),
        ("[normal]\nspeed = 3\nplans = []", "speed"),
    ],
)
def test_a_bad_plans_file_says_what_to_fix(tmp_path, text: str, message: str) -> None:
    with pytest.raises(PlanError, match=re.escape(message)):
        plans_from(tmp_path, text)


def test_a_missing_plans_file_is_an_error_naming_it(tmp_path) -> None:
    with pytest.raises(PlanError, match=r"nothere\.toml"):
        load_plans(str(tmp_path / "nothere.toml"), CATEGORIES, TIMEOUTS)
