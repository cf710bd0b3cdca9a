"""Command-centre accounts in the store: add, list, remove, new password, new API token.

What `fieldlink users ...` and the web login use; no Flask here. Clear passwords and
tokens are shown once, when made, and never stored.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

from server.rules.roles import ROLES
from server.store import Account, Prepared, token_digest
from wire import unwritable

MIN_PASSWORD = 8


class AccountError(ValueError):
    """A request about accounts that cannot be done; the text says why and what to do."""


@dataclass(frozen=True)
class Credentials:
    """What a new account, or a new password or token, gives its owner: shown once."""

    name: str
    role: str
    api_token: str | None = None
    password: str | None = None

    def public(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


def _checked_password(password: str | None) -> str:
    password = password or secrets.token_urlsafe(12)
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def add(name: str, role: str, password: str | None = None) -> Credentials:
    """A new account; without a password one is made up (and shown once)."""
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not name or len(name) > 48 or ":" in name or unwritable(name):
        raise AccountError("an account name has 1-48 characters, no ':' and no control characters")
    if Account.get_or_none(Account.name == name) is not None:
        raise AccountError(f"account {name!r} exists: `fieldlink users password {name}` resets it")
    password = _checked_password(password)
    token = secrets.token_urlsafe(32)
    Account.create(
        name=name,
        role=role,
        password_hash=generate_password_hash(password),
        token_hash=token_digest(token),
        session_key=secrets.token_hex(8),
    )
    return Credentials(name, role, api_token=token, password=password)


def _get(name: str) -> Account:
    account = Account.get_or_none(Account.name == name)
    if account is None:
        raise AccountError(f"no account {name!r}: `fieldlink users list` shows them")
    return account


def new_password(name: str, password: str | None = None) -> Credentials:
    """Sets a password and ends the account's open web sessions."""
    account = _get(name)
    password = _checked_password(password)
    account.password_hash = generate_password_hash(password)
    account.save()
    end_sessions(name)
    return Credentials(name, account.role, password=password)


def end_sessions(name: str) -> None:
    Account.update(session_key=secrets.token_hex(8)).where(Account.name == name).execute()


def new_token(name: str) -> Credentials:
    """A new API token; the old one stops working at once."""
    account = _get(name)
    token = secrets.token_urlsafe(32)
    account.token_hash = token_digest(token)
    account.save()
    return Credentials(name, account.role, api_token=token)


def remove(name: str) -> None:
    _get(name).delete_instance()


# every REST request asks this
_BY_TOKEN = Prepared(lambda digest: Account.select().where(Account.token_hash == digest))


def by_token(token: str) -> Account | None:
    return _BY_TOKEN.first(Account, token_digest(token)) if token else None


def by_password(name: str, password: str) -> Account | None:
    account = None if unwritable(name) else Account.get_or_none(Account.name == name)
    if account is None:
        # as slow as a wrong password, so a name's existence does not show in the timing
        check_password_hash(_dummy_hash(), password)
        return None
    return account if check_password_hash(account.password_hash, password) else None


def same_key(account: Account, session_key: str) -> bool:
    return hmac.compare_digest(account.session_key, session_key)


@cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(8))
