"""Taking devices and accounts back at once: screens whose credentials changed are let go.

`fieldlink units remove|token --rotate` and `fieldlink users remove|token|password` change the
store, and may run on another machine while the server runs. Every REVOCATION_CHECK_S this
sweep asks the store which credentials the connected screens still hold
(`server/rules/roles.py: revoked`) and disconnects the rest; a removed unit also leaves the
live state, the map and the recommendations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from server.notify import CONSOLE_NS, TERMINAL_NS
from server.notify.notifier import Notifier
from server.rules.roles import revoked
from server.state.live_state import LiveState
from server.store import IN_FLEET, Account, Unit, db

log = logging.getLogger(__name__)

REVOCATION_CHECK_S = 2.0


class Revocations:
    def __init__(
        self,
        sio: Any,  # Flask-SocketIO's; its python-socketio server holds the namespaces
        live: LiveState,
        notifier: Notifier,
        in_worker: Callable[..., Any],
    ):
        self.sio, self.live, self.notifier, self.in_worker = sio, live, notifier, in_worker

    def sweep(self) -> None:
        handlers = self.sio.server.namespace_handlers
        with db.connection_context():
            terminals = handlers[TERMINAL_NS].held()
            self._let_go(TERMINAL_NS, revoked(terminals, unit_tokens(terminals.values())))
            consoles = handlers[CONSOLE_NS].held()
            self._let_go(CONSOLE_NS, revoked(consoles, account_credentials(consoles.values())))
            removed = [u.id for u in Unit.select(Unit.id).where(~IN_FLEET)]
        # only those still in live state (a glance from this thread; the worker decides)
        still_here = [unit_id for unit_id in removed if unit_id in self.live.units]
        if still_here:
            self.in_worker(self._forget, still_here)

    def _let_go(self, namespace: str, sids: list[str]) -> None:
        for sid in sids:
            log.info("%s connection %s let go: its credentials were taken back", namespace, sid)
            self.sio.server.disconnect(sid, namespace=namespace)

    def _forget(self, unit_ids: list[str]) -> None:
        """In the worker, which owns live state: removed units leave it and the consoles."""
        for unit_id in unit_ids:
            if self.live.remove(unit_id):
                log.info("unit %s removed from the fleet", unit_id)
                self.notifier.console("unit_removed", {"id": unit_id})


def unit_tokens(held: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each unit in `held` ((unit, token digest) pairs) still in the fleet: its token now."""
    ids = {unit for unit, _ in held}
    if not ids:
        return {}
    rows = Unit.select(Unit.id, Unit.terminal_token_hash).where(Unit.id.in_(ids) & IN_FLEET)
    return {row.id: row.terminal_token_hash for row in rows}


def account_credentials(
    held: Iterable[tuple[tuple[str, bool], str]],
) -> dict[tuple[str, bool], str]:
    """Each account in `held` (((name, by token), credential) pairs) that still exists: its
    token's digest and its session key now."""
    names = {name for (name, _by_token), _ in held}
    if not names:
        return {}
    current: dict[tuple[str, bool], str] = {}
    for account in Account.select().where(Account.name.in_(names)):
        current[(account.name, True)] = account.token_hash
        current[(account.name, False)] = account.session_key
    return current
