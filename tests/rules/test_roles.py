"""Who may: the roles' grants, and which connections lose the credential they came with."""

from __future__ import annotations

from server.rules.roles import allowed, permission_for, revoked


def test_a_connection_is_let_go_when_its_owner_is_gone_or_holds_another_credential() -> None:
    held = {
        "s1": ("car-1", "digest-a"),  # unchanged
        "s2": ("car-2", "digest-b"),  # token rotated since
        "s3": ("car-3", "digest-c"),  # unit removed
        "s4": (("desk", True), "tok"),  # any hashable owner: an account and how it signed in
    }
    current = {"car-1": "digest-a", "car-2": "digest-new", ("desk", True): "tok"}
    assert revoked(held, current) == ["s2", "s3"]
    assert revoked({}, current) == []


def test_reading_is_viewing_and_only_commanders_change_the_duty_level() -> None:
    assert permission_for("GET", "/api/v1/duty") == "view"
    assert permission_for("PUT", "/api/v1/duty/") == "command"
    assert permission_for("POST", "/api/v1/incidents") == "dispatch"
    assert not allowed("dispatcher", "command") and allowed("commander", "command")
