"""Who may do what: the command centre's roles and the permission each request needs.

Pure rules over plain values; `server/web/auth.py` applies them to every REST route and every
`/console` event. Terminals and kiosks are not accounts: their device token binds them to
their own unit (`server/web/sockets.py`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

ROLES = ("dispatcher", "commander", "admin")

# view: read the map, incidents, figures; dispatch: the everyday work of a dispatcher
# (incidents, orders, unit status); command: the duty level; admin: grids, posts, accounts
PERMISSIONS = ("view", "dispatch", "command", "admin")

GRANTS: dict[str, frozenset[str]] = {
    "dispatcher": frozenset({"view", "dispatch"}),
    "commander": frozenset({"view", "dispatch", "command"}),
    "admin": frozenset(PERMISSIONS),
}

# changes that are not a dispatcher's to make; every other change is "dispatch"
RESERVED_CHANGES = {
    ("PUT", "/api/v1/duty"): "command",
    ("PUT", "/api/v1/grids"): "admin",
    ("PUT", "/api/v1/posts"): "admin",
}

READS = frozenset({"GET", "HEAD", "OPTIONS"})

Conn = TypeVar("Conn", bound=Hashable)  # a connection
Owner = TypeVar("Owner", bound=Hashable)  # who it speaks for


def permission_for(method: str, path: str) -> str:
    """The permission a REST request needs: reading is "view"; a change "dispatch" unless
    it is reserved to a higher role."""
    method = method.upper()
    if method in READS:
        return "view"
    return RESERVED_CHANGES.get((method, path.rstrip("/")), "dispatch")


def allowed(role: str, permission: str) -> bool:
    return permission in GRANTS.get(role, frozenset())


def lowest_role_with(permission: str) -> str:
    """For refusals that say what to do: the least role that may."""
    return next((r for r in ROLES if allowed(r, permission)), "admin")


def revoked(held: Mapping[Conn, tuple[Owner, str]], current: Mapping[Owner, str]) -> list[Conn]:
    """Connections to let go: each holds (its owner, the credential it connected with), and
    `current` maps each owner still allowed to its credential now. A removed unit or
    account, a rotated token, a reset password: the credential differs or is gone."""
    return [key for key, (owner, credential) in held.items() if current.get(owner) != credential]
