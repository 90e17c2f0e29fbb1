"""The embedded store: one SQLite file in WAL mode, one connection per thread.

Writes take the database lock up front (``BEGIN IMMEDIATE``) so two processes never
interleave a read-decide-write; a transition whose run moved on since the caller read
it is refused (``ConflictError``) rather than merged. ``synchronous`` is ``NORMAL`` by
default: with WAL, a committed transition survives the process crashing at any moment,
but the last commits before a power loss may be lost; ``FULL`` survives both and costs
a disk flush per commit (``sqlite:///path?synchronous=full``).

A writer waits for another process's lock up to ``timeout`` seconds, then gives up with
``StoreUnavailableError`` (``keel.store.sqlite.dialect``). Every public method maps
SQLite's errors (read-only, disk full, damaged file...) to a ``StoreError`` that names
the file and what to do (``keel.store.sqlite.faults``). Opening a database that needs no
migration takes no write lock, so a read-only file can still be read. Everything else
is the skeleton's (``keel.store.sqlstore``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from keel.errors import StoreError
from keel.store.boundary import store_boundary
from keel.store.sql import Migration, load_migrations
from keel.store.sqlite.dialect import SQLiteDialect
from keel.store.sqlite.files import create_private
from keel.store.sqlstore import SQLStore
from keel.store.wakeups import Wakeup

#: seconds a writer waits for another process's lock before giving up (``?timeout=``)
DEFAULT_TIMEOUT = 30.0
SYNCHRONOUS = ("off", "normal", "full", "extra")


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (``executescript`` would commit midway)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        raise StoreError(f"migration ends with an incomplete statement: {pending.strip()!r}")


@store_boundary
class SQLiteStore(SQLStore):
    """``Store`` on a SQLite file. Safe to share between threads and processes."""

    dialect: SQLiteDialect

    def __init__(
        self, path: str | Path, *, synchronous: str = "normal", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if synchronous.lower() not in SYNCHRONOUS:
            raise StoreError(f"synchronous={synchronous!r} is not one of {', '.join(SYNCHRONOUS)}")
        if not timeout > 0:
            raise StoreError(f"timeout={timeout!r} must be a number of seconds above 0")
        self.path = Path(path)
        self.synchronous = synchronous.lower()
        self.timeout = timeout
        super().__init__(SQLiteDialect(self.path, self.synchronous, timeout))
        if str(path) != ":memory:":
            create_private(self.path)
        try:
            self._at_boundary(self._migrate)
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> None:
        migrations = load_migrations("keel.store.sqlite.migrations")
        if not self._pending(migrations):
            return  # nothing to write: a read-only file can still be read
        with self.dialect.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            newest = max((m.version for m in migrations), default=0)
            unknown = sorted(v for v in applied if v > newest)
            if unknown:
                raise StoreError(
                    f"{self.path} was written by a newer keel (schema version {unknown[-1]}, "
                    f"this keel knows up to {newest}): upgrade keel"
                )
            for migration in migrations:
                if migration.version in applied:
                    continue
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                    (migration.version, migration.name),
                )
                self._applied.append(f"{migration.version:04d}_{migration.name}")

    def _pending(self, migrations: list[Migration]) -> bool:
        """Whether opening must write (migrations to apply, or a newer keel's schema to
        refuse), found by reading alone."""
        conn = self.dialect.connection()
        known = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if known is None:
            return True
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        return applied != {m.version for m in migrations}

    def database_time(self) -> float | None:
        """None: every process using the file is on this host and shares its clock."""
        return None

    def listen(self, wake: Callable[[Wakeup], None]) -> Callable[[], None] | None:
        """Call ``wake`` when another process's commit leaves work, through a socket
        beside the file (``keel.store.sqlite.wake``); None (the worker polls) for
        ``:memory:`` or where no socket can be bound."""
        wakes = self.dialect.wakes
        return None if wakes is None else wakes.listen(wake)
