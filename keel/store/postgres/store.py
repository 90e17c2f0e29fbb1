"""The multi-host store: one PostgreSQL database shared by every worker on every host.

Semantics are the SQLite store's: both are the same skeleton (``keel.store.sqlstore``),
checked by one contract suite. What differs is how concurrent writers are kept apart
and woken (``keel.store.postgres.dialect``), and:

- Times are the caller's, as on SQLite; the runtime reads them from the database's
  clock (``database_time``) so hosts with wrong clocks agree on leases and timers.
- A lost connection is not an error: each call reconnects and runs again, and a commit
  whose answer was lost is looked up rather than guessed (``connections``). Connections
  carry an ``application_name`` (``keel PID`` unless the URL sets one), so an operator
  can tell whose they are.
- Workers ``LISTEN`` for the store's notifications (``listener``) and poll only slowly
  as a fallback.
- Migrations are applied by one process at a time, and only when asked (``upgrade``):
  a worker of an older keel must not find its schema changed under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from keel.errors import StoreError
from keel.store.boundary import store_boundary
from keel.store.postgres.connections import RECONNECT_FOR, Connections, storage_fault
from keel.store.postgres.dialect import PostgresDialect, Q
from keel.store.postgres.listener import Listener
from keel.store.postgres.settings import connection_settings, parse_url
from keel.store.sql import Migration, load_migrations
from keel.store.sqlstore import SQLStore
from keel.store.urls import masked_url
from keel.store.wakeups import Wakeup

#: the advisory lock that lets one process at a time apply migrations
_MIGRATION_LOCK = 0x6B65656C  # "keel"


def _cut(exc: psycopg.Error) -> bool:
    """Whether a connection was cut by the server's side (shut down, restarting, the
    backend terminated), rather than never possible (wrong host, port or password)."""
    if isinstance(exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown
                  | pg_errors.CannotConnectNow):  # fmt: skip
        return True
    return isinstance(exc, psycopg.OperationalError) and (
        "server closed the connection" in str(exc) or "consuming input failed" in str(exc)
    )


def _sql_statements(script: str) -> list[str]:
    """A migration's statements (comments dropped; no statement holds a ';' literal)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


@store_boundary
class PostgresStore(SQLStore):
    """``Store`` on a PostgreSQL schema. Safe to share between threads; any number of
    processes on any number of hosts may use the same schema at once."""

    dialect: PostgresDialect

    def __init__(
        self,
        url: str,
        *,
        upgrade: bool = False,
        min_connections: int = 1,
        max_connections: int = 10,
        reconnect_for: float = RECONNECT_FOR,
    ) -> None:
        self.url = url
        self.conninfo, self.schema = parse_url(url)
        self.channel = f"keel_{self.schema}"
        self._settings = connection_settings(self.conninfo, self.schema)
        self._listeners: list[Listener] = []
        self._ensure_schema(reconnect_for)
        connections = Connections(
            self.conninfo, self._settings, self._shown_url(), name=f"keel-{self.schema}",
            min_size=min_connections, max_size=max_connections, reconnect_for=reconnect_for,
        )  # fmt: skip
        super().__init__(PostgresDialect(connections, self.channel))
        try:
            migrated = self._at_boundary(lambda: self._migrate(apply=upgrade))
            self._applied = [f"{m.version:04d}_{m.name}" for m in migrated]
        except BaseException:
            self.close()
            raise

    def _shown_url(self) -> str:
        return masked_url(self.url)

    def _ensure_schema(self, reconnect_for: float) -> None:
        """Create the schema if missing. A server that is unreachable or refuses the
        login fails at once (a wrong URL should not make anyone wait); a connection cut
        while it is being made or used (a failover, a restart) is tried again, as every
        later call is, for up to ``reconnect_for`` seconds."""
        give_up = time.monotonic() + reconnect_for
        delay = 0.05
        while True:
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **self._settings) as conn:
                    found = conn.execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                    ).fetchone()
                    if found is None:  # a read-only database (a standby) can still be read
                        create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                        conn.execute(create.format(sql.Identifier(self.schema)))
                return
            except psycopg.Error as exc:
                fault = storage_fault(exc, self._shown_url())
                if fault is not None:
                    raise fault from None
                if not _cut(exc) or time.monotonic() >= give_up:
                    raise StoreError(
                        f"cannot connect to {self._shown_url()}: {exc}".strip()
                    ) from None
                time.sleep(delay)
                delay = min(2 * delay, 2.0)

    def _migrate(self, *, apply: bool) -> list[Migration]:
        migrations = load_migrations("keel.store.postgres.migrations")
        newest = max((m.version for m in migrations), default=0)
        with self.dialect.read() as cur:  # nothing to write usually: a read-only one can be read
            row = cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            if row is not None and row[0]:
                applied = {row[0] for row in cur.execute("SELECT version FROM schema_migrations")}
                if applied == {m.version for m in migrations}:
                    return []
        with self.dialect.write() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz "
                "NOT NULL DEFAULT now())"
            )
            applied = {row[0] for row in cur.execute("SELECT version FROM schema_migrations")}
            unknown = sorted(v for v in applied if v > newest)
            if unknown:
                raise StoreError(
                    f"the database {self._shown_url()} (schema {self.schema}) was written by a "
                    f"newer keel (schema version {unknown[-1]}, this keel knows up to "
                    f"{newest}): upgrade keel"
                )
            pending = [m for m in migrations if m.version not in applied]
            if pending and not apply:
                names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
                raise StoreError(
                    f"the database {self._shown_url()} (schema {self.schema}) needs "
                    f"migrations {names}: run `keel db upgrade` (keel worker, keel run and "
                    "keel resume apply them themselves)"
                )
            for migration in pending:
                for statement in _sql_statements(migration.sql):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return pending

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()
        if getattr(self, "dialect", None) is not None:
            super().close()

    def drop_schema(self) -> None:
        """Remove the schema and everything in it (tests use one schema each)."""
        with psycopg.connect(self.conninfo, autocommit=True, **self._settings) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    # --- the database's clock and wake-ups -------------------------------------------------

    def database_time(self) -> float | None:
        with self.dialect.read() as cur:
            row = cur.execute(Q["database_time"]).fetchone()
        assert row is not None
        return float(row[0])

    def listen(self, wake: Callable[[Wakeup], None]) -> Callable[[], None] | None:
        listener = Listener(self.conninfo, self._settings, self.channel, wake)
        self._listeners.append(listener)
        return listener.stop
