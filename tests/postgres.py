"""The PostgreSQL server tests run against: ``KEEL_TEST_POSTGRES`` or the one on this
machine. In CI (``CI`` set) a missing server or driver fails the tests that need it; on
a developer's machine they are skipped, saying why."""

from __future__ import annotations

import os
import secrets

import pytest

from keel.errors import StoreError

URL = os.environ.get("KEEL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

try:
    from keel.store.postgres import PostgresStore
except ImportError as exc:  # psycopg is an optional dependency (keelflow[postgres])
    _MISSING: str | None = f"psycopg is not installed ({exc}): pip install -e '.[test]'"
    PostgresStore = None  # type: ignore[assignment,misc]
else:
    _MISSING = None


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def fresh_url() -> str:
    """A URL naming a new, empty schema on the test server."""
    joiner = "&" if "?" in URL else "?"
    return f"{URL}{joiner}schema=t_{secrets.token_hex(6)}"


def open_postgres(url: str | None = None) -> PostgresStore:
    """A store in a fresh schema (drop it with ``drop_schema``)."""
    if _MISSING is not None:
        unavailable(_MISSING)
    try:
        return PostgresStore(url or fresh_url(), upgrade=True)
    except StoreError as exc:
        unavailable(str(exc))
        raise
