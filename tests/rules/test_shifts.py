"""Who may sign on where, and each officer's stretches of a period on each unit."""

from __future__ import annotations

from server.rules.shifts import ShiftRecord, Stint, crew_clash, stints

LI = {"id": "A1", "name": "Li Wei"}
WANG = {"id": "B2", "name": "Wang Fang"}


def test_an_officer_on_another_units_crew_is_refused_until_it_signs_off() -> None:
    crews_now = {"car-1": [LI], "car-2": [WANG]}
    clash = crew_clash([WANG], "car-1", crews_now)
    assert clash is not None and clash.code == "officer_on_other_unit"
    assert clash.params == {"officer": "B2", "unit": "car-2"}
    assert crew_clash([LI, WANG], "car-3", {"car-1": [], "car-2": []}) is None


def test_a_crew_signing_on_again_or_taking_over_its_own_unit_is_no_clash() -> None:
    assert crew_clash([LI], "car-1", {"car-1": [LI]}) is None
    assert crew_clash([LI, WANG], "car-1", {"car-1": [LI]}) is None


def test_stints_are_clipped_to_the_period_and_a_shift_still_on_lasts_until_now() -> None:
    shifts = [
        ShiftRecord("car-1", (("A1", "Li Wei"), ("B2", "Wang Fang")), 100.0, 500.0),
        ShiftRecord("car-2", (("A1", "Li Wei"),), 600.0, None),
        ShiftRecord("car-3", (("C3", "Zhao"),), 0.0, 150.0),  # before the period
    ]
    assert stints(shifts, 200.0, 1000.0, now=800.0) == [
        Stint("A1", "Li Wei", "car-1", 200.0, 500.0),
        Stint("B2", "Wang Fang", "car-1", 200.0, 500.0),
        Stint("A1", "Li Wei", "car-2", 600.0, 800.0),
    ]
