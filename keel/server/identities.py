"""Tokens and the identities they stand for.

A token is ``keel_`` + 43 random URL-safe characters (256 bits), printed once; the store
keeps its SHA-256 only. Tokens are high-entropy, so a slow password hash would add
nothing, and a lookup by hash needs no constant-time compare of our own (the database
finds the row by an index on a digest, not by comparing the secret). Lookups are cached
for ``CACHE_SECONDS`` per server: a revoked token stops working within that time on every
server.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from keel.server.roles import ROLES, Permission, check_role
from keel.store.protocol import Store
from keel.store.tokens import TokenRecord

PREFIX = "keel_"
#: how long a token looked up is trusted without asking the store again
CACHE_SECONDS = 2.0
#: the most tokens kept in the cache (the least recently looked up go first)
MOST_CACHED = 10_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is acting: a token's name (recorded in histories as ``by``), role, groups."""

    name: str
    role: str
    groups: tuple[str, ...] = ()

    def may(self, permission: Permission) -> bool:
        return permission in ROLES.get(self.role, frozenset())

    def matches(self, names: tuple[str, ...]) -> bool:
        """True when this identity's name, role or one of its groups is in ``names``."""
        return self.name in names or self.role in names or any(g in names for g in self.groups)


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"token name '{name}' is not allowed: 1-64 letters, digits, '.', '_', '@' or "
            "'-', starting with a letter or digit"
        )
    return name


def create_token(
    store: Store,
    name: str,
    role: str,
    *,
    groups: tuple[str, ...] = (),
    expires_at: float | None = None,
    created_by: str | None = None,
    now: float | None = None,
) -> tuple[str, TokenRecord]:
    """Make and keep a token; the secret is returned here and nowhere else, ever."""
    record = TokenRecord(
        name=check_name(name), role=check_role(role), groups=tuple(groups),
        created_at=time.time() if now is None else now, created_by=created_by,
        expires_at=expires_at,
    )  # fmt: skip
    secret = PREFIX + secrets.token_urlsafe(32)
    store.add_token(record, hash_secret(secret))
    return secret, record


class Tokens:
    """Token lookups for one server, cached briefly (see the module's docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: known tokens only, by digest: unknown ones are not kept, so nobody can fill
        #: it (or push real tokens out) by sending made-up tokens
        self._seen: OrderedDict[str, tuple[float, TokenRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, token: str, now: float) -> tuple[bool, Identity | None]:
        """``(True, identity)`` when the answer needs no store read (a malformed token,
        or one looked up less than ``CACHE_SECONDS`` ago); ``(False, None)`` when only
        ``identity`` can answer. Lets an event loop skip a thread for the common case."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return True, None
        cached = self._seen.get(hash_secret(token))
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return True, _usable(cached[1], now)
        return False, None

    def identity(self, token: str, now: float) -> Identity | None:
        """The identity of a usable token; None for an unknown, revoked or expired one."""
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        return self.identity_by_digest(hash_secret(token), now)

    def identity_by_digest(self, digest: str, now: float) -> Identity | None:
        """``identity`` for a token known only by its digest (a dashboard session keeps
        the digest, never the token), through the same cache: a revoked token ends its
        sessions within ``CACHE_SECONDS`` too."""
        cached = self._seen.get(digest)
        record: TokenRecord | None
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            record = cached[1]
        else:
            record = self.store.token_by_hash(digest)
            if record is not None:
                with self._lock:
                    self._seen[digest] = (now, record)
                    self._seen.move_to_end(digest)
                    if len(self._seen) > MOST_CACHED:
                        self._seen.popitem(last=False)
        return _usable(record, now)

    def forget(self, name: str) -> None:
        """Drop the token ``name`` from the cache (it was revoked here: refuse it now)."""
        with self._lock:
            for digest in [d for d, (_, r) in self._seen.items() if r.name == name]:
                del self._seen[digest]


def _usable(record: TokenRecord | None, now: float) -> Identity | None:
    if record is None or not record.usable_at(now):
        return None
    return Identity(record.name, record.role, record.groups)
