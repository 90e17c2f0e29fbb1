"""``Tokens.cached``: what the guard answers on the event loop without a store read. It
must agree with ``identity`` and never answer for a token it has not looked up lately,
or a revoked token would keep working past ``CACHE_SECONDS``."""

from __future__ import annotations

from pathlib import Path

from keel.server.identities import CACHE_SECONDS, Identity, Tokens, create_token
from keel.store.sqlite import SQLiteStore

T0 = 1_000.0


def test_only_a_token_looked_up_lately_is_answered_from_the_cache(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        secret, _ = create_token(store, "ops", "operator", now=T0)
        tokens = Tokens(store)
        assert tokens.cached(secret, T0) == (False, None)  # never looked up: ask the store
        who = tokens.identity(secret, T0)
        assert who == Identity("ops", "operator")
        assert tokens.cached(secret, T0 + 1) == (True, who)
        store.revoke_token("ops", T0 + 1)
        assert tokens.cached(secret, T0 + CACHE_SECONDS) == (False, None)  # stale: ask again
        assert tokens.identity(secret, T0 + CACHE_SECONDS) is None
        assert tokens.cached(secret, T0 + CACHE_SECONDS + 1) == (True, None)  # revoked, known
    finally:
        store.close()


def test_a_malformed_token_is_refused_without_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        tokens = Tokens(store)
        assert tokens.cached("not-a-keel-token", T0) == (True, None)
        assert tokens.cached("keel_" + "x" * 300, T0) == (True, None)
    finally:
        store.close()
