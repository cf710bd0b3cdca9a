"""The categories' names: the centre's own in both languages, else the code and the built-in
Chinese name."""

from __future__ import annotations

import pytest

from server.rules.categories import BUILT_IN_CHINESE, category_names, parse_names


def test_the_centre_s_names_come_first_then_the_built_in_ones() -> None:
    own = parse_names("fire=Fire/火警, help=Help call/求助电话")
    names = category_names(("fire", "help", "urgent"), own)
    assert names == {
        "fire": {"en": "Fire", "zh": "火警"},
        "help": {"en": "Help call", "zh": "求助电话"},
        "urgent": {"en": "urgent", "zh": BUILT_IN_CHINESE["urgent"]},
    }


@pytest.mark.parametrize("raw", ["fire", "fire=Fire", "fire=/火警", "=Fire/火警"])
def test_a_name_without_both_languages_is_refused_naming_the_entry(raw: str) -> None:
    with pytest.raises(ValueError, match="is not CODE=ENGLISH/CHINESE"):
        parse_names(raw)
