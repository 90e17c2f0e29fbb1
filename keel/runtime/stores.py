"""Open the store a URL names: the one place that knows which backends exist.

``KEEL_DATABASE_URL`` or an explicit URL: ``sqlite:///path/to/file.db`` (relative to the
current folder), ``sqlite:////absolute/path.db``, optionally ``?synchronous=full`` and
``?timeout=SECONDS`` (how long a writer waits for another process's lock); a
bare path is taken as a SQLite file. The default is ``.keel/keel.db`` in the current
folder, so a project keeps its runs beside its code.

``postgresql://user@host:5432/db`` (optionally ``?schema=NAME``, default ``keel``) is the
store many hosts share. Its migrations are applied by ``keel db upgrade`` and by the
commands that execute runs (``keel worker``, ``keel run``, ``keel resume``:
``upgrade=True``); other commands refuse a database that needs them.

An embedded database is created only by what starts work (``create=True``: ``keel run``,
``keel worker``, ``keel db upgrade``, ``keel.Client``); the other commands refuse a file
that does not exist, so a mistyped URL is an error instead of a new, empty store.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from keel.errors import StoreError
from keel.store.protocol import Store
from keel.store.urls import masked_url

DEFAULT_PATH = Path(".keel") / "keel.db"
ENVIRONMENT = "KEEL_DATABASE_URL"


def store_url(url: str | None = None) -> str:
    return url or os.environ.get(ENVIRONMENT) or f"sqlite:///{DEFAULT_PATH}"


#: the forms a database URL takes, for messages about a wrong one
FORMS = "sqlite:///PATH or postgresql://USER@HOST/DB"


def open_store(url: str | None = None, *, upgrade: bool = False, create: bool = True) -> Store:
    """The store ``url`` names; ``upgrade``: apply pending migrations of a shared
    database (an embedded one is always brought up to date when opened); ``create``:
    create an embedded database that does not exist yet, else refuse it."""
    from keel.store.sqlite import SQLiteStore

    url = store_url(url)
    if "://" not in url:
        _exists(url, create)
        return SQLiteStore(url)
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise StoreError(f"{masked_url(url)}: no file named; use sqlite:///path/to/keel.db")
        options = {
            key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()
        }
        unknown = sorted(set(options) - {"synchronous", "timeout"})
        if unknown:
            raise StoreError(
                f"{masked_url(url)}: unknown option {', '.join(unknown)} "
                "(known: synchronous, timeout)"
            )
        _exists(path, create)
        return SQLiteStore(
            path,
            synchronous=options.get("synchronous", "normal"),
            timeout=_seconds(url, options.get("timeout")),
        )
    if parts.scheme in ("postgresql", "postgres"):
        try:
            from keel.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"a {parts.scheme}:// URL needs the PostgreSQL driver, which is not installed "
                f"({exc}): pip install 'keelflow[postgres]'"
            ) from None
        return PostgresStore(url, upgrade=upgrade)
    raise StoreError(
        f"{masked_url(url)}: unknown database URL scheme '{parts.scheme}' (use {FORMS})"
    )


def _exists(path: str, create: bool) -> None:
    """Refuse an embedded database that is not there, unless this may create it: a
    command that only reads or decides would otherwise show a typo as an empty store."""
    if create or Path(path).exists():
        return
    raise StoreError(
        f"no keel database at {path}: check --db / {ENVIRONMENT} "
        f"({FORMS}; a database is created by `keel run`)"
    )


def _seconds(url: str, text: str | None) -> float:
    from keel.store.sqlite.store import DEFAULT_TIMEOUT

    if text is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < 1e9:
        raise StoreError(f"{url}: timeout={text!r} must be a number of seconds above 0")
    return seconds
