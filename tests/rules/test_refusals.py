"""A refusal is a code and its values: the English is worded here, the screens word the code."""

from __future__ import annotations

import pytest

from server.rules.lifecycle import LifecycleError, next_incident_state, next_order_state
from server.rules.refusals import WORDING, refusal


def test_the_english_reads_coded_values_with_spaces_and_articles() -> None:
    assert str(refusal("order_ended", order="o-1", state="timed_out")) == (
        "order o-1 is already timed out"
    )
    said = refusal("role_needed", name="zhao", role="commander", needs="admin")
    assert str(said) == "zhao is a commander: this needs an admin"
    assert said.public() == {
        "reason": "role_needed",
        "params": {"name": "zhao", "role": "commander", "needs": "admin"},
    }


def test_a_code_without_a_wording_is_a_mistake_found_at_once() -> None:
    with pytest.raises(KeyError, match="no wording"):
        refusal("no_such_reason")


def test_the_lifecycle_refuses_with_codes_the_screens_word() -> None:
    with pytest.raises(LifecycleError) as closing:
        next_incident_state("dispatched", "close")
    assert closing.value.refusal.public() == {
        "reason": "incident_not_closable",
        "params": {"event": "close", "state": "dispatched"},
    }
    with pytest.raises(LifecycleError) as declining:
        next_order_state("accepted", "declined")
    assert declining.value.refusal.code == "decline_passed"


def test_every_wording_names_only_values_given_as_parameters() -> None:
    for code, text in WORDING.items():
        names = {part.split("}")[0].split("!")[0] for part in text.split("{")[1:]}
        assert str(refusal(code, **dict.fromkeys(names, "x_y"))), code
