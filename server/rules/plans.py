"""Response plans: how many units of which kinds an incident gets, by duty level.

A plan is chosen by the most specific match for the incident: `guard_panic` (a guard post's
panic button), `category/priority`, `category`, `*/priority`, then `*`. The commander's duty
level (normal, reinforced, wartime) picks the set of plans and shortens the ack timeouts.
Plans come built in and may be replaced per duty level from a TOML file
(`FIELDLINK_PLANS_FILE`; `deploy/plans.example.toml` documents the format).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from server.rules.dispatch import ON_FOOT, RESPONDING_KINDS
from server.store import UNIT_KINDS

DUTY_LEVELS = ("normal", "reinforced", "wartime")
PRIORITIES = (1, 2, 3, 4)


class PlanError(ValueError):
    """A plans file the server cannot use; the text names the key and what to fix."""


@dataclass(frozen=True)
class Slot:
    """`count` units of any of `kinds`, those that arrive first."""

    kinds: frozenset[str]
    count: int


@dataclass(frozen=True)
class Plan:
    match: str
    slots: tuple[Slot, ...]

    def kinds(self) -> frozenset[str]:
        """Every kind any of its slots takes."""
        return frozenset().union(*(s.kinds for s in self.slots))

    def public(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "units": [{"kinds": sorted(s.kinds), "count": s.count} for s in self.slots],
        }


@dataclass(frozen=True)
class DutyLevel:
    plans: dict[str, Plan]
    ack_timeout_factor: float = 1.0


def _plan(match: str, *slots: tuple[frozenset[str] | set[str], int]) -> Plan:
    return Plan(match, tuple(Slot(frozenset(kinds), count) for kinds, count in slots))


_GUARDS = frozenset({"guard_post"})
# The calls people on foot and volunteers help with: a patrol unit leads, they search and
# guide (the only built-in plans that name them; every other call is police work).
HELPED_CALLS = ("search", "crowd", "lost_person")


def _helped(patrol: int, on_foot: int) -> dict[str, Plan]:
    return {c: _plan(c, (RESPONDING_KINDS, patrol), (ON_FOOT, on_foot)) for c in HELPED_CALLS}


# Built in: a guard's panic gets the two patrol units that arrive first and the nearest
# other guard post; priority 1 gets two units; higher duty levels send more, sooner.
BUILT_IN: dict[str, DutyLevel] = {
    "normal": DutyLevel(
        {
            "guard_panic": _plan("guard_panic", (RESPONDING_KINDS, 2), (_GUARDS, 1)),
            **_helped(patrol=1, on_foot=4),
            "*/1": _plan("*/1", (RESPONDING_KINDS, 2)),
            "*": _plan("*", (RESPONDING_KINDS, 1)),
        }
    ),
    "reinforced": DutyLevel(
        {
            "guard_panic": _plan("guard_panic", (RESPONDING_KINDS, 3), (_GUARDS, 1)),
            **_helped(patrol=1, on_foot=6),
            "*/1": _plan("*/1", (RESPONDING_KINDS, 3)),
            "*/2": _plan("*/2", (RESPONDING_KINDS, 2)),
            "*": _plan("*", (RESPONDING_KINDS, 1)),
        },
        ack_timeout_factor=0.67,
    ),
    "wartime": DutyLevel(
        {
            "guard_panic": _plan("guard_panic", (RESPONDING_KINDS, 4), (_GUARDS, 2)),
            **_helped(patrol=2, on_foot=8),
            "*/1": _plan("*/1", (RESPONDING_KINDS, 4)),
            "*/2": _plan("*/2", (RESPONDING_KINDS, 3)),
            "*": _plan("*", (RESPONDING_KINDS, 2)),
        },
        ack_timeout_factor=0.5,
    ),
}


@dataclass(frozen=True)
class ResponsePlans:
    levels: dict[str, DutyLevel]
    ack_timeouts_s: dict[int, float]  # per priority, at the normal duty level

    def plan_for(self, duty: str, category: str, priority: int, guard_panic: bool) -> Plan:
        plans = self.levels[duty].plans
        keys: tuple[str, ...] = ("guard_panic",) if guard_panic else ()
        keys += (f"{category}/{priority}", category, f"*/{priority}", "*")
        return next(plans[k] for k in keys if k in plans)

    def ack_timeout_s(self, duty: str, priority: int) -> float:
        return self.ack_timeouts_s[priority] * self.levels[duty].ack_timeout_factor

    def public(self, categories: tuple[str, ...]) -> dict[str, Any]:
        return {
            "categories": list(categories),
            "duty_levels": {
                name: {
                    "ack_timeout_s": {
                        str(p): round(self.ack_timeout_s(name, p), 1) for p in PRIORITIES
                    },
                    "plans": [plan.public() for plan in level.plans.values()],
                }
                for name, level in self.levels.items()
            },
        }


# -- the plans file --------------------------------------------------------------------
class _SlotSchema(Schema):
    class Meta:
        unknown = RAISE

    kinds = fields.List(
        fields.String(validate=validate.OneOf(UNIT_KINDS)),
        required=True,
        validate=validate.Length(min=1),
    )
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=20))


class _PlanSchema(Schema):
    class Meta:
        unknown = RAISE

    match = fields.String(required=True, validate=validate.Length(min=1, max=64))
    units = fields.List(
        fields.Nested(_SlotSchema), required=True, validate=validate.Length(min=1, max=5)
    )

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> Plan:
        return _plan(data["match"], *((set(s["kinds"]), s["count"]) for s in data["units"]))


class _LevelSchema(Schema):
    class Meta:
        unknown = RAISE

    ack_timeout_factor = fields.Float(load_default=1.0, validate=validate.Range(min=0.1, max=5))
    plans = fields.List(fields.Nested(_PlanSchema), required=True)


def _check_match(level: str, match: str, categories: tuple[str, ...]) -> None:
    category, _, priority = match.partition("/")
    if match == "guard_panic" or (category in ("*", *categories) and not priority):
        return
    if category in ("*", *categories) and priority in {str(p) for p in PRIORITIES}:
        return
    raise PlanError(
        f"[{level}] plan match {match!r}: use guard_panic, *, CATEGORY, CATEGORY/PRIORITY or"
        f" */PRIORITY with a category of {', '.join(categories)} and a priority of 1-4"
    )


def load_plans(
    path: str, categories: tuple[str, ...], ack_timeouts_s: dict[int, float]
) -> ResponsePlans:
    """The built-in plans, with the duty levels a TOML file at `path` defines replaced."""
    levels = dict(BUILT_IN)
    if path:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PlanError(f"plans file {path}: {exc}") from None
        unknown = set(doc) - set(DUTY_LEVELS)
        if unknown:
            raise PlanError(
                f"plans file {path}: unknown duty level(s) {', '.join(sorted(unknown))};"
                f" use {', '.join(DUTY_LEVELS)}"
            )
        for name, raw in doc.items():
            try:
                level = _LevelSchema().load(raw)
            except ValidationError as exc:
                raise PlanError(f"plans file {path}, [{name}]: {exc.messages}") from None
            plans = {}
            for plan in level["plans"]:
                _check_match(name, plan.match, categories)
                plans[plan.match] = plan
            if "*" not in plans:
                raise PlanError(f'plans file {path}, [{name}]: add a plan with match = "*"')
            levels[name] = DutyLevel(plans, level["ack_timeout_factor"])
    return ResponsePlans(levels, ack_timeouts_s)
