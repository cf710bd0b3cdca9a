"""Why a command is refused, or why the server ended an order, as a code and its parameters:
each screen words the code in its own language (`static/said.js`), and the English wording
here is the REST answer's `message`, the timeline's `reason` and what a log or a script
reads. Pure: no I/O.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

# code -> English wording; a parameter in braces is named the same on every screen, and
# `!n` puts "a" or "an" before it
WORDING = {
    "no_incident": "no incident {incident!r}",
    "no_order": "no order {order!r}",
    "no_unit": "no unit {unit!r}",
    "no_alarm": "no alarm {alarm}",
    "no_alert": "no alert {alert}",
    "order_of_another_unit": "order {order} belongs to another unit",
    "order_ended": "order {order} is already {state}",
    "order_with_unit": "order {order} is already with unit {unit}",
    "ack_passed": "order is already {state}",
    "decline_passed": "order is already {state}; clear it instead of declining",
    "incident_step": "cannot {event} this incident: it is {state}",
    "incident_no_orders": "cannot send orders for this incident: it is {state}: create a new"
    " incident instead",
    "incident_not_closable": "cannot close this incident: it is {state}: resolve it or hand it"
    " over first",
    "no_plan_now": "the incident is {state}: no plan now",
    "no_location_to_recommend": "the incident has no location: set one to get recommendations",
    "no_location_to_call_out": "the incident has no location: set one to call people out",
    "call_out_needs_people_on_foot": "the plan for {category} calls names no one on foot: a"
    " call-out is for a search, a crowd, a lost person",
    "unit_has_this_incident": "unit {unit} already has an order for this incident",
    "unit_offline": "unit {unit} is offline: its link is down",
    "unit_busy": "unit {unit} has an order for incident {incident}: send with divert to take it",
    "unit_out_of_service": "unit {unit} is out of service: send with divert to take it",
    "volunteer_not_named": "unit {unit} is a {kind}: volunteers go only to calls whose response"
    " plan names them (a search, a crowd, a lost person)",
    "unknown_category": "unknown category {category!r}: use one of {categories}",
    "merge_into_itself": "an incident cannot be merged into itself",
    "merge_closed": "incident {incident} is closed: merge open incidents only",
    "too_many_cells": "{count} cells of {cell_m} m: too many for one map (at most {most}); ask"
    " for larger cells",
    "sign_in": "sign in: send `Authorization: Bearer <api_token>` (`fieldlink users add` prints"
    " one) or use the console's login",
    "role_needed": "{name} is {role!n}: this needs {needs!n}",
    "role_may_not": "{role!n} may not do this",
    "metrics_token": "send `Authorization: Bearer <FIELDLINK_METRICS_TOKEN>`",
    "session_ended": "the session has ended: sign in again",
    "not_connected": "not connected: connect with the device token",
    "positions_too_often": "too many positions: one every few seconds",
    "officer_on_other_unit": "officer {officer} is on the crew of unit {unit}: sign off there"
    " first (or a dispatcher ends that shift)",
    "no_shift": "unit {unit} has no crew signed on",
    # why the server ended an order (the timeline's reason)
    "diverted": "diverted to incident {incident}",
    "reassigned": "reassigned to {unit}",
    "incident_closed": "incident closed",
    "not_accepted_in": "not accepted in {seconds} s",
}


# parameters that are codes themselves (a state, an event, a kind of unit): each screen
# words them from its own tables, English reads them with spaces
CODED_PARAMS = frozenset({"state", "event", "kind", "role", "needs"})


class _English(string.Formatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "n":
            return f"{'an' if str(value)[:1] in 'aeiou' else 'a'} {value}"
        return super().convert_field(value, conversion)


_ENGLISH = _English()


@dataclass(frozen=True)
class Refusal:
    """One reason, as `code` (a key of WORDING) and the values its wording names."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        words = {
            k: v.replace("_", " ") if k in CODED_PARAMS and isinstance(v, str) else v
            for k, v in self.params.items()
        }
        return _ENGLISH.format(WORDING[self.code], **words)

    def public(self) -> dict[str, Any]:
        """What an answer carries beside its English `message`."""
        return {"reason": self.code, "params": self.params}


def refusal(code: str, **params: Any) -> Refusal:
    if code not in WORDING:
        raise KeyError(f"no wording for refusal {code!r}")
    return Refusal(code, params)


class Refused(ValueError):
    """A rule's refusal raised; its text is the English wording."""

    def __init__(self, reason: Refusal):
        super().__init__(str(reason))
        self.refusal = reason
