"""The databases a ``sql`` step may reach: the ``[sql.connections]`` of the worker's
``keel.toml`` (found as the worker's config is: ``keel.runtime.worker.config``).

    [sql.connections.warehouse]
    url = "postgresql://reporter@db.internal/warehouse"   # or sqlite:///PATH

    [sql.connections.billing]
    url_secret = "BILLING_DB_URL"    # the URL is the secret of that name (keel.runtime.secrets)

A step names a connection (``connection: warehouse``); a spec can reach no database the
operator did not name. ``sqlite:///data/app.db`` is relative to the folder of the file
that names it, ``sqlite:////srv/app.db`` is absolute; ``postgresql://`` (or
``postgres://``) URLs are libpq's. A URL held by a secret is looked up at each attempt,
so it is revealed to the attempt and redacted from what the attempt records.

Invariants: each connection has exactly one of ``url`` and ``url_secret``; a key or value
that is wrong raises ``SqlConfigError`` naming the file and the key, and no message
quotes a URL (it may hold a password). The file is read once per process and folder,
and again when a step names a connection it lacks (it may have been added since).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from keel.errors import NonRetryable
from keel.runtime.secrets import secret
from keel.runtime.worker.config_sections import check_keys, config_place, find_section, table_of
from keel.spec.sql_text import Dialect
from keel.spec.step_nodes import VARIABLE_NAME

CONNECTION_KEYS = ("url", "url_secret")
_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")
#: the rule of ``keel.spec.types.Name``: what a step's ``connection`` may be
_CONNECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}")
#: the rule of secret names (``keel.runtime.secrets``)


class SqlConfigError(NonRetryable):
    """The ``[sql]`` settings are wrong or lack the connection a step names; the message
    names the file and the key."""


@dataclass(frozen=True, slots=True)
class Connection:
    """One named connection as configured (its URL, or the secret that holds it)."""

    name: str
    #: where it is configured, for messages: ``keel.toml (/path/keel.toml)``
    source: str
    #: the folder relative SQLite paths start from
    folder: Path
    url: str | None = None
    url_secret: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a connection leads at this attempt: a PostgreSQL URL or a SQLite file."""

    dialect: Dialect
    #: the libpq URL (PostgreSQL) or the file (SQLite)
    address: str
    #: whether the address came from a secret (then no message may quote any of it)
    secret: bool


def connection(name: str, start: Path | None = None) -> Connection:
    """The connection ``name`` of the config found from ``start`` (the current folder)."""
    folder = (start or Path.cwd()).resolve()
    found = _connections(folder).get(name)
    if found is None:
        _connections.cache_clear()  # added since the file was read?
        found = _connections(folder).get(name)
    if found is None:
        raise SqlConfigError(_not_configured(name, folder))
    return found


def target(connection: Connection) -> Target:
    """Where ``connection`` leads now (a secret URL is looked up, so revealed)."""
    from_secret = connection.url_secret is not None
    url = secret(connection.url_secret) if connection.url_secret else connection.url or ""
    where = f"sql connection {connection.name!r}"
    what = f"the secret {connection.url_secret}" if from_secret else f"{connection.source}: url"
    if url.startswith(_POSTGRES):
        return Target("postgresql", url, from_secret)
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE) :].split("?", 1)[0]
        if not path:
            raise SqlConfigError(f"{where}: {what} names no file: write sqlite:///path/to.db")
        return Target("sqlite", str((connection.folder / path).expanduser()), from_secret)
    raise SqlConfigError(
        f"{where}: {what} is not a database URL: write postgresql://USER@HOST/DB or "
        "sqlite:///path/to.db"
    )


def forget_sql_config() -> None:
    """Have the next step read the ``[sql]`` connections again (a test's run does)."""
    _connections.cache_clear()


@functools.cache
def _connections(folder: Path) -> dict[str, Connection]:
    found = find_section(folder, "sql", SqlConfigError)
    return {} if found is None else parse_sql_table(found[0], found[2], found[1])


def parse_sql_table(label: str, raw: object, folder: Path) -> dict[str, Connection]:
    """The connections of an ``[sql]`` table; ``label`` names the file in errors."""
    table = table_of(label, "sql", raw, SqlConfigError)
    check_keys(label, "sql", table, ("connections",), SqlConfigError)
    connections = table_of(label, "sql.connections", table.get("connections", {}), SqlConfigError)
    return {name: _connection(label, name, value, folder) for name, value in connections.items()}


def _connection(label: str, name: str, raw: object, folder: Path) -> Connection:
    where = f"sql.connections.{name}"
    if not _CONNECTION_NAME.fullmatch(name):
        raise SqlConfigError(
            f"{label}: {where}: a connection name starts with a letter or '_', then "
            "letters, digits, '_', '.', '-'"
        )
    table = table_of(label, where, raw, SqlConfigError)
    check_keys(label, where, table, CONNECTION_KEYS, SqlConfigError)
    url, url_secret = table.get("url"), table.get("url_secret")
    if (url is None) == (url_secret is None):
        raise SqlConfigError(
            f"{label}: {where} needs one of url (the database URL) and url_secret (the "
            "name of a secret holding it)"
        )
    if url is not None and not (isinstance(url, str) and url.startswith((*_POSTGRES, _SQLITE))):
        # the value is not quoted: it may hold a password
        raise SqlConfigError(
            f"{label}: {where}.url must be postgresql://USER@HOST/DB or sqlite:///path/to.db"
        )
    if url_secret is not None and not (
        isinstance(url_secret, str) and VARIABLE_NAME.match(url_secret)
    ):
        raise SqlConfigError(
            f"{label}: {where}.url_secret must be the NAME of a secret (letters, digits and "
            "'_', e.g. WAREHOUSE_URL), not the URL"
        )
    return Connection(name, label, folder, url, url_secret)


def _not_configured(name: str, folder: Path) -> str:
    return (
        f"sql connection {name!r} is not configured: add [sql.connections.{name}] with "
        f'url = "postgresql://..." (or url_secret = "SECRET_NAME") to '
        f"{config_place(folder, 'sql')}"
    )
