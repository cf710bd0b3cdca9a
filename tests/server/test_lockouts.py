"""One audit entry per lockout, however often a guesser knocks while locked out."""

from __future__ import annotations

from server.web.throttle import Lockouts


def test_a_lockout_is_noted_once_per_account_and_address_until_it_ends() -> None:
    now = [0.0]
    lockouts = Lockouts(clock=lambda: now[0])
    assert lockouts.first("li", "10.0.0.1", wait_s=60)
    assert not lockouts.first("li", "10.0.0.1", wait_s=59)
    assert lockouts.first("li", "10.0.0.2", wait_s=60)  # another address: its own lockout
    assert lockouts.first("wang", "10.0.0.1", wait_s=60)
    now[0] = 61.0
    assert lockouts.first("li", "10.0.0.1", wait_s=60)  # a new lockout after the first ended


def test_ended_lockouts_are_let_go_so_many_names_cannot_fill_the_memory() -> None:
    now = [0.0]
    lockouts = Lockouts(clock=lambda: now[0])
    lockouts.MOST = 100
    for n in range(100):
        lockouts.first(f"user{n}", "10.0.0.1", wait_s=10)
    now[0] = 11.0
    assert lockouts.first("one-more", "10.0.0.1", wait_s=10)
    assert len(lockouts._until) == 1
