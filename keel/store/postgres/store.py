"""The multi-host store: one PostgreSQL database shared by every worker on every host.

Semantics are the SQLite store's (one contract suite checks both); what differs is how
concurrent writers are kept apart:

- A transition locks its run's row first (``SELECT ... FOR UPDATE``), so transitions of
  one run go one at a time and the hash chain is extended by one writer at a time,
  while other runs move in parallel. A group commit locks its runs in id order.
- A claim takes ready rows with ``FOR UPDATE SKIP LOCKED`` and skips runs whose row is
  locked by a transition in progress, so claims never wait for each other or for a
  transition (and never wait in a circle with one).
- Concurrency and rate limits are counted under a transaction-scoped advisory lock per
  key, so two claims on two hosts never both take the last place.
- Every transition that leaves work for others (queued attempts, timers, notifications)
  sends a ``NOTIFY`` on commit; workers ``LISTEN`` and poll only slowly as a fallback.
- Times are the caller's, as on SQLite; the runtime reads them from the database's
  clock (``database_time``) so hosts with wrong clocks agree on leases and timers.
- A lost connection is not an error: each call reconnects and runs again, and a commit
  whose answer was lost is looked up rather than guessed (``connections``). Connections
  carry an ``application_name`` (``keel PID`` unless the URL sets one), so an operator
  can tell whose they are.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from keel.engine.events import Event, NodeReclaimed, NodeStarted
from keel.errors import ConflictError, LeaseLostError, RunNotFoundError, StoreError
from keel.spec.model import WorkflowSpec
from keel.store.appending import (
    BatchOrder,
    leasable_now,
    leased_claims,
    link_events,
    started_events,
)
from keel.store.boundary import store_boundary
from keel.store.chain import GENESIS, ChainLink, canonical_json
from keel.store.limits import RATE_SLACK, Admission, Candidate, choose
from keel.store.postgres.connections import RECONNECT_FOR, Connections, storage_fault
from keel.store.presence import WorkerRecord, worker_of, worker_row
from keel.store.records import (
    CircuitState,
    Claimed,
    Claims,
    Committed,
    Lease,
    OutboxItem,
    Ready,
    RunRecord,
    StoredEvent,
    Timer,
    Transition,
    Wait,
    item_column,
    item_of,
    outbox_item_of,
    ready_row,
    run_record,
    spec_from_row,
    stored_event_of,
    timer_of,
    wait_of,
)
from keel.store.sql import Migration, load_migrations, load_queries
from keel.store.urls import masked_url

Q = load_queries("keel.store.postgres")
log = logging.getLogger("keel.store.postgres")
T = TypeVar("T")

DEFAULT_SCHEMA = "keel"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: the advisory lock that lets one process at a time apply migrations
_MIGRATION_LOCK = 0x6B65656C  # "keel"
_ENDED = ("succeeded", "failed", "cancelled")


#: database errors after which the transition is refused as a conflict (the caller
#: reloads and tries again) rather than failing the whole commit
def _cut(exc: psycopg.Error) -> bool:
    """Whether a connection was cut by the server's side (shut down, restarting, the
    backend terminated), rather than never possible (wrong host, port or password)."""
    if isinstance(exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown
                  | pg_errors.CannotConnectNow):  # fmt: skip
        return True
    return isinstance(exc, psycopg.OperationalError) and (
        "server closed the connection" in str(exc) or "consuming input failed" in str(exc)
    )


_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_REFUSALS = (ConflictError, LeaseLostError, RunNotFoundError)
#: free attempts: not held, not on hold, due, their circuit closed (or past its
#: cool-down, for the probe), their concurrency and rate keys not full. Locking the run
#: (not the ready row) with SKIP LOCKED leaves a run in a transition to the next look.
_SELECT_FREE = (
    "SELECT r.run_id, r.node, r.item, r.attempt, r.queue, r.circuit, r.limit_key, "
    "r.limit_max, r.rate_key, r.rate_max, r.rate_per FROM ready r JOIN runs u ON u.id = r.run_id"
)
_FREE = (
    "r.owner IS NULL AND NOT r.held AND r.available_at <= %(now)s"
    " AND (r.circuit IS NULL OR r.circuit NOT IN (SELECT name FROM circuits"
    " WHERE open_until > %(now)s OR probe_until > %(now)s))"
    " AND (r.limit_key IS NULL OR (SELECT count(*) FROM ready h WHERE h.limit_key ="
    " r.limit_key AND h.owner IS NOT NULL) < r.limit_max)"
    " AND (r.rate_key IS NULL OR (SELECT count(*) FROM rate_starts s WHERE s.key = r.rate_key"
    " AND s.at > %(now)s - r.rate_per) < r.rate_max)"
)
_FREE_ORDER = "ORDER BY r.priority DESC, r.available_at LIMIT %(limit)s FOR UPDATE OF u SKIP LOCKED"


def parse_url(url: str) -> tuple[str, str]:
    """The psycopg connection string and the schema a ``postgresql://`` URL names
    (``?schema=NAME``, default ``keel``; every other option goes to libpq)."""
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept: list[tuple[str, str]] = []
    for key, value in options:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise StoreError(
            f"{masked_url(url)}: schema={schema!r} must be lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    scheme = "postgresql"
    query = urlencode(kept, quote_via=quote)  # libpq reads "+" as itself, not a space
    conninfo = urlunsplit((scheme, parts.netloc, parts.path, query, parts.fragment))
    return conninfo, schema


def connection_settings(conninfo: str, schema: str) -> dict[str, Any]:
    """Settings of every connection the store makes: its schema, a name the server shows
    (``pg_stat_activity``), and a bound on how long a dead server can make it wait. The
    URL's own settings win."""
    given = conninfo_to_dict(conninfo)
    options = f"{given.get('options') or ''} -c search_path={schema}".strip()
    settings: dict[str, Any] = {"options": options}
    defaults: dict[str, Any] = {
        "application_name": f"keel {os.getpid()}",
        "connect_timeout": 10,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    settings.update({key: value for key, value in defaults.items() if key not in given})
    return settings


def _sql_statements(script: str) -> list[str]:
    """A migration's statements (comments dropped; no statement holds a ';' literal)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


@store_boundary
class PostgresStore:
    """``Store`` on a PostgreSQL schema. Safe to share between threads; any number of
    processes on any number of hosts may use the same schema at once."""

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
        self._listeners: list[_Listener] = []
        self._applied: list[str] = []
        self._ensure_schema(reconnect_for)
        self._db = Connections(
            self.conninfo, self._settings, self._shown_url(), name=f"keel-{self.schema}",
            min_size=min_connections, max_size=max_connections, reconnect_for=reconnect_for,
        )  # fmt: skip
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

    # --- connections and transactions ---------------------------------------------------

    def _at_boundary(self, call: Callable[[], T]) -> T:
        """Run one public method, again after a lost connection (see ``connections``)."""
        return self._db.run(call)

    @contextmanager
    def _read(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._db.read() as cur:
            yield cur

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._db.write() as cur:
            yield cur

    # --- migrations -------------------------------------------------------------------------

    def _migrate(self, *, apply: bool) -> list[Migration]:
        migrations = load_migrations("keel.store.postgres.migrations")
        newest = max((m.version for m in migrations), default=0)
        with self._read() as cur:  # nothing to write usually: a read-only one can be read
            row = cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
            if row is not None and row[0]:
                applied = {row[0] for row in cur.execute("SELECT version FROM schema_migrations")}
                if applied == {m.version for m in migrations}:
                    return []
        with self._write() as cur:
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
                    cur.execute(statement.encode())
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        return pending

    def migrations_applied(self) -> list[str]:
        return list(self._applied)

    def schema_version(self) -> int:
        with self._read() as cur:
            row = cur.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0) if row else 0

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()
        connections = getattr(self, "_db", None)
        if connections is not None:
            connections.close()

    def drop_schema(self) -> None:
        """Remove the schema and everything in it (tests use one schema each)."""
        with psycopg.connect(self.conninfo, autocommit=True, **self._settings) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    # --- the database's clock and wake-ups -------------------------------------------------

    def database_time(self) -> float | None:
        with self._read() as cur:
            row = cur.execute(Q["database_time"]).fetchone()
        assert row is not None
        return float(row[0])

    def listen(self, wake: Callable[[str], None]) -> Callable[[], None] | None:
        listener = _Listener(self.conninfo, self._settings, self.channel, wake)
        self._listeners.append(listener)
        return listener.stop

    def _notify(self, cur: psycopg.Cursor[Any], messages: set[str]) -> None:
        for message in sorted(messages):
            cur.execute("SELECT pg_notify(%s, %s)", (self.channel, message))

    # --- specs ----------------------------------------------------------------------------

    def save_spec(self, spec: WorkflowSpec, at: float) -> None:
        with self._write() as cur:
            self._save_spec(cur, spec, at)

    def _save_spec(self, cur: psycopg.Cursor[Any], spec: WorkflowSpec, at: float) -> None:
        cur.execute(Q["insert_spec"], (spec.version, spec.name, spec.model_dump_json(), at))

    def load_spec(self, version: str) -> WorkflowSpec:
        with self._read() as cur:
            row = cur.execute(Q["select_spec"], (version,)).fetchone()
        if row is None:
            raise StoreError(f"no workflow definition with version {version} is stored")
        spec: WorkflowSpec = spec_from_row(version, row[0])
        return spec

    # --- appending events -------------------------------------------------------------------

    def _append(
        self,
        cur: psycopg.Cursor[Any],
        run_id: str,
        events: Sequence[Event],
        at: float,
        expected_seq: int | None = None,
        expected_head: str | None = None,
    ) -> list[StoredEvent]:
        """Append to a run whose row this transaction has locked."""
        head = cur.execute(Q["select_head"], (run_id,)).fetchone()
        appended = link_events(run_id, head, events, at, expected_seq, expected_head)
        if appended.rows:
            cur.executemany(Q["insert_event"], appended.rows)
            cur.execute(
                Q["update_head"],
                (appended.last_seq, appended.head_hash, float(at), run_id),
            )
        return appended.stored

    def create_run(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        *,
        origin: str | None = None,
    ) -> Committed:
        with self._write() as cur:
            self._insert_run(cur, spec, run_input, first, origin)
            notes: set[str] = set()
            committed = self._transition(cur, first, notes)
            self._notify(cur, notes)
            return committed

    def _insert_run(
        self,
        cur: psycopg.Cursor[Any],
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        origin: str | None,
        parent: tuple[str, str] | None = None,
    ) -> None:
        self._save_spec(cur, spec, first.at)
        parent_run, parent_node = parent or (None, None)
        cur.execute(
            Q["insert_run"],
            (first.run_id, spec.name, spec.version, "pending", canonical_json(run_input),
             origin, first.at, first.at, GENESIS, parent_run, parent_node),
        )  # fmt: skip
        if cur.rowcount != 1:
            raise StoreError(f"a run with id {first.run_id} exists already")
        cur.execute(Q["lock_runs"], ([first.run_id],))

    # --- transitions -------------------------------------------------------------------------

    def commit(self, transitions: Sequence[Transition]) -> list[Committed]:
        if not transitions:
            return []
        results: list[Committed] = []
        notes: set[str] = set()
        order = BatchOrder()
        with self._write() as cur:
            cur.execute(Q["lock_runs"], (sorted({t.run_id for t in transitions}),))
            for transition in transitions:
                try:
                    order.admit(transition)
                    # a refused transition leaves nothing behind, not even the leases it
                    # released before the refusal was found
                    with cur.connection.transaction():
                        mine: set[str] = set()
                        results.append(self._transition(cur, transition, mine))
                        notes |= mine
                except _REFUSALS as exc:
                    order.refused(transition)
                    results.append(Committed(transition, error=exc))
                except _RETRYABLE as exc:
                    order.refused(transition)
                    error = ConflictError(f"run {transition.run_id}: {exc}".strip())
                    results.append(Committed(transition, error=error))
            self._notify(cur, notes)
        return results

    def _transition(self, cur: psycopg.Cursor[Any], t: Transition, notes: set[str]) -> Committed:
        # the lease check comes first, so a refused transition has written nothing
        for lease in t.done:
            cur.execute(
                Q["delete_held"],
                (lease.run_id, lease.node, item_column(lease.item), lease.attempt, lease.owner),
            )
            row = cur.fetchone()
            if row is None:
                raise LeaseLostError(
                    f"run {lease.run_id}: {lease.node} attempt {lease.attempt} is no longer "
                    f"held by {lease.owner}"
                )
            if row[1] is not None:  # a place under a concurrency limit came free
                notes.add(f"ready {row[0]} 0")
        for node, item in t.withdraw:
            cur.execute(Q["delete_queued"], (t.run_id, node, item_column(item)))
        # counted before anything is leased: the failure that opens a circuit must not
        # hand out the next attempt that needs it
        for outcome in t.circuits:
            if outcome.ok:
                cur.execute(Q["circuit_succeeded"], (outcome.name,))
            else:
                cur.execute(
                    Q["circuit_failed"],
                    {"name": outcome.name, "threshold": outcome.failures,
                     "cooldown": outcome.cooldown, "at": t.at},
                )  # fmt: skip
        leased = leasable_now(t)
        queued: list[Candidate] = []
        if t.lease_to is not None and len(leased) < t.lease_limit:
            queued = self._free(
                cur, t.at, t.lease_limit - len(leased), [t.run_id], t.lease_queues, t.lease_for
            ).taken
        if t.lease_to is None or not (leased or queued):
            stored = self._append(cur, t.run_id, t.events, t.at, t.expected_seq, t.expected_head)
            self._enqueue(cur, t.run_id, t.enqueue)
            claimed: list[Claimed] = []
            unleased: Sequence[Ready] = t.enqueue
        else:
            stored, claimed = self._enqueue_leased(cur, t, leased, queued)
            chosen = {id(r) for r in leased}
            unleased = [r for r in t.enqueue if id(r) not in chosen]
        for ready in unleased:
            notes.add(f"ready {ready.queue} {ready.available_at!r}")
        for timer in t.timers:  # a timer may be for another run (a child's end, its parent)
            cur.execute(
                Q["upsert_timer"],
                {"run": timer.run_id, "key": timer.key, "due": timer.due_at,
                 "data": canonical_json(timer.data)},
            )  # fmt: skip
            notes.add(f"timer {timer.due_at!r}")
        for key in t.clear_timers:
            cur.execute(Q["delete_timer"], (t.run_id, key))
        self._waits(cur, t, notes)
        for note in t.notify:
            cur.execute(
                Q["insert_outbox"],
                (t.run_id, canonical_json(note.notifier), canonical_json(note.payload), t.at, t.at),
            )
            notes.add("outbox")
        if t.status is not None:
            output = None if t.output is None else canonical_json(t.output)
            cur.execute(Q["update_status"], (t.status, output, t.reason, t.run_id))
            if t.status in _ENDED:
                cur.execute(Q["delete_run_ready"], (t.run_id,))
                cur.execute(Q["delete_run_timers"], (t.run_id,))
                cur.execute(Q["delete_run_waits"], (t.run_id,))
        return Committed(t, stored, claimed=claimed)

    def _waits(self, cur: psycopg.Cursor[Any], t: Transition, notes: set[str]) -> None:
        """Waiting nodes listed and unlisted, child runs created, a pause's hold."""
        for wait in t.waits:
            cur.execute(
                Q["upsert_wait"],
                (t.run_id, wait.node, wait.waits_for, wait.since, wait.until,
                 canonical_json(wait.details)),
            )  # fmt: skip
        for node in t.clear_waits:
            cur.execute(Q["delete_wait"], (t.run_id, node))
        if t.children:
            row = cur.execute(Q["select_origin"], (t.run_id,)).fetchone()
            origin = row[0] if row else None
            for child in t.children:
                try:
                    self._insert_run(cur, child.spec, child.input, child.first, origin,
                                     (child.parent_run, child.parent_node))  # fmt: skip
                except StoreError:  # another process started this child: the parent moved
                    raise ConflictError(
                        f"child run {child.first.run_id} of run {t.run_id} exists already"
                    ) from None
                self._transition(cur, child.first, notes)
        if t.hold is True:
            cur.execute(Q["hold_ready"], (t.run_id,))
        elif t.hold is False:
            cur.execute(Q["release_ready"], (t.run_id,))
            notes.add("ready * 0")

    def _enqueue(self, cur: psycopg.Cursor[Any], run_id: str, ready: Sequence[Ready]) -> None:
        if ready:
            cur.executemany(Q["insert_ready"], [ready_row(run_id, r) for r in ready])

    def _enqueue_leased(
        self,
        cur: psycopg.Cursor[Any],
        t: Transition,
        leased: list[Ready],
        queued: list[Candidate],
    ) -> tuple[list[StoredEvent], list[Claimed]]:
        """Append the transition's events and the ``NodeStarted`` of the attempts it
        leases in one go: new ones, and queued ones taken."""
        assert t.lease_to is not None
        owner, expires = t.lease_to, t.at + t.lease_for
        started = started_events(t, leased, queued)
        stored = self._append(
            cur,
            t.run_id,
            [*t.events, *started],
            t.at,
            t.expected_seq,
            t.expected_head,
        )
        if leased:
            cur.executemany(
                Q["insert_ready"], [ready_row(t.run_id, r, owner, expires) for r in leased]
            )
        if queued:
            cur.executemany(
                Q["take_lease"], [(owner, expires, t.run_id, c.node, c.item) for c in queued]
            )
        chosen = {id(r) for r in leased}
        self._enqueue(cur, t.run_id, [r for r in t.enqueue if id(r) not in chosen])
        return stored[: len(t.events)], leased_claims(t, stored)

    # --- the ready queue and leases ---------------------------------------------------------

    def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_for: float,
        *,
        run_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
    ) -> list[Claimed]:
        claimed = Claims()
        if limit <= 0:
            return claimed
        if run_id is not None:
            run_ids = [run_id]
        expires = now + lease_for
        try:
            with self._write() as cur:
                admission = self._free(cur, now, limit, run_ids, queues, lease_for, want_retry=True)
                claimed.retry_at = admission.retry_at
                by_run: dict[str, list[Candidate]] = {}
                for candidate in admission.taken:
                    by_run.setdefault(candidate.run_id, []).append(candidate)
                for row_run, candidates in by_run.items():
                    taken = self._take(cur, row_run, candidates, owner, expires, now)
                    started = [NodeStarted(node=c.node, attempt=c.attempt, worker=owner,
                                           item=item_of(c.item)) for c in taken]  # fmt: skip
                    events = self._append(cur, row_run, started, now)
                    for c, event in zip(taken, events, strict=True):
                        lease = Lease(row_run, c.node, item_of(c.item), c.attempt, owner, expires)
                        claimed.append(Claimed(lease, event))
        except _RETRYABLE as exc:  # nothing was taken; the next look tries again
            log.info("a claim gave way to another transaction: %s", exc)
            return Claims()
        return claimed

    @staticmethod
    def _take(
        cur: psycopg.Cursor[Any],
        run_id: str,
        candidates: list[Candidate],
        owner: str,
        expires: float,
        now: float,
    ) -> list[Candidate]:
        """Lease the candidates of one locked run that are still free (one may have been
        taken between the look and the lock; its rate start then counts, harmlessly)."""
        rows = cur.execute(
            Q["take_leases"],
            (owner, expires, run_id, [c.node for c in candidates], [c.item for c in candidates]),
        ).fetchall()
        still = {(node, item) for node, item in rows}
        return [c for c in candidates if (c.node, c.item) in still]

    def _free(
        self,
        cur: psycopg.Cursor[Any],
        now: float,
        limit: int,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
        lease_for: float,
        *,
        want_retry: bool = False,
    ) -> Admission:
        """Choose free attempts to take, best first, locking their runs (see ``choose``
        and ``_SELECT_FREE``)."""
        free = _PostgresFree(cur, now, limit, run_ids, queues, lease_for)
        return choose(free, now, limit, want_retry=want_retry)

    def renew(self, owner: str, now: float, lease_for: float) -> int:
        with self._write() as cur:
            # a probe holds its circuit half-open for as long as its lease lives
            cur.execute(Q["renew_probes"], {"until": now + lease_for, "now": now, "owner": owner})
            cur.execute(Q["renew_leases"], (now + lease_for, owner))
            return cur.rowcount

    def lease_owners(self) -> list[str]:
        with self._read() as cur:
            return [row[0] for row in cur.execute(Q["select_owners"])]

    def reclaim(
        self, now: float, *, dead_owners: Sequence[str] = (), reason: str = ""
    ) -> list[StoredEvent]:
        reclaimed: list[StoredEvent] = []
        with self._write() as cur:
            rows = [(*row, "lease expired") for row in cur.execute(Q["select_lost"], (now,))]
            for owner in dead_owners:
                rows += [(*row, reason or "owner died")
                         for row in cur.execute(Q["select_held_by"], (owner,))]  # fmt: skip
            if not rows:
                return reclaimed
            free_runs = {
                row[0] for row in cur.execute(Q["lock_free_runs"], (sorted({r[0] for r in rows}),))
            }
            seen: set[tuple[str, str, int]] = set()
            notes: set[str] = set()
            for run_id, node, item, attempt, owner, why in rows:
                if (run_id, node, item) in seen or run_id not in free_runs:
                    continue  # a run in a transition now: its leases are looked at next time
                seen.add((run_id, node, item))
                cur.execute(
                    Q["drop_lease"], {"run": run_id, "node": node, "item": item, "owner": owner}
                )
                dropped = cur.fetchone()
                if dropped is None:
                    continue
                notes.add(f"ready {dropped[0]} 0")
                event = NodeReclaimed(node=node, attempt=attempt, owner=owner, reason=why,
                                      item=item_of(item))  # fmt: skip
                reclaimed += self._append(cur, run_id, [event], now)
            self._notify(cur, notes)
        return reclaimed

    def leases(self, run_id: str) -> list[Lease]:
        with self._read() as cur:
            rows = cur.execute(Q["select_leases_of_run"], (run_id,)).fetchall()
        return [
            Lease(run, node, item_of(item), attempt, owner, expires)
            for run, node, item, attempt, owner, expires in rows
        ]

    def ready_count(self, run_id: str) -> int:
        with self._read() as cur:
            row = cur.execute(Q["count_ready_of_run"], (run_id,)).fetchone()
        return int(row[0]) if row else 0

    # --- reading runs -------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as cur:
            row = cur.execute(Q["select_run"], (run_id,)).fetchone()
            if row is None and run_id:
                matches = cur.execute(
                    Q["select_run_prefix"], (run_id, run_id + "\uffff")
                ).fetchall()
                if len(matches) > 1:
                    raise RunNotFoundError(f"'{run_id}' matches several runs: give more characters")
                if matches:
                    row = cur.execute(Q["select_run"], (matches[0][0],)).fetchone()
        if row is None:
            raise RunNotFoundError(f"no run with id '{run_id}' (see `keel runs`)")
        return run_record(row)

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        parent: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("parent_run", parent), ("status", status), ("workflow", workflow)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        base = re.split(r"\s+FROM runs", Q["select_run"])[0]
        query = f"{base} FROM runs {clause} ORDER BY created_at DESC, id LIMIT %s"
        with self._read() as cur:
            rows = cur.execute(query.encode(), (*params, limit)).fetchall()
        return [run_record(row) for row in rows]

    def history(self, run_id: str, after_seq: int = 0) -> list[StoredEvent]:
        with self._read() as cur:
            rows = cur.execute(Q["select_history"], (run_id, after_seq)).fetchall()
        return [stored_event_of(row) for row in rows]

    def chain_links(self, run_id: str) -> list[ChainLink]:
        with self._read() as cur:
            rows = cur.execute(Q["select_chain"], (run_id,)).fetchall()
        return [ChainLink(*row) for row in rows]

    # --- the outbox of notifications -------------------------------------------------------

    def take_notifications(
        self, owner: str, now: float, limit: int, lease_for: float
    ) -> list[OutboxItem]:
        with self._write() as cur:
            rows = cur.execute(
                Q["take_outbox"],
                {"owner": owner, "until": now + lease_for, "now": now, "limit": limit},
            ).fetchall()
        rows.sort(key=lambda row: (row[5], row[0]))
        return [
            OutboxItem(row_id, run_id, json.loads(notifier), json.loads(payload), deliveries)
            for row_id, run_id, notifier, payload, deliveries, _ in rows
        ]

    def finish_notification(
        self, item_id: int, now: float, *, error: str | None = None, retry_at: float | None = None
    ) -> None:
        with self._write() as cur:
            if error is None:
                cur.execute(Q["outbox_delivered"], (now, item_id))
            else:
                cur.execute(Q["outbox_failed"], (retry_at, error, item_id))

    def notifications(self, run_id: str) -> list[OutboxItem]:
        with self._read() as cur:
            rows = cur.execute(Q["select_outbox_of_run"], (run_id,)).fetchall()
        return [outbox_item_of(row) for row in rows]

    def circuits(self) -> list[CircuitState]:
        with self._read() as cur:
            rows = cur.execute(Q["select_circuits"]).fetchall()
        return [CircuitState(*row) for row in rows]

    def waits(
        self, *, waits_for: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[Wait]:
        with self._read() as cur:
            rows = cur.execute(
                Q["select_waits"], {"kind": waits_for, "run": run_id, "limit": limit}
            ).fetchall()
        return [wait_of(row) for row in rows]

    def due_timers(self, now: float, limit: int) -> list[Timer]:
        with self._read() as cur:
            rows = cur.execute(Q["select_due_timers"], (now, limit)).fetchall()
        return [timer_of(row) for row in rows]

    def next_timer_at(self) -> float | None:
        with self._read() as cur:
            row = cur.execute(Q["select_next_timer"]).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # --- live workers (see keel.store.presence) -------------------------------------------
    # A table of their own, written only by workers: nothing else in the store reads it.

    def register_worker(self, worker: WorkerRecord) -> None:
        with self._write() as cur:
            cur.execute(Q["upsert_worker"], worker_row(worker))

    def worker_seen(self, owner: str, at: float) -> bool:
        with self._write() as cur:
            cur.execute(Q["worker_seen"], (at, owner))
            return cur.rowcount == 1

    def unregister_worker(self, owner: str) -> None:
        with self._write() as cur:
            cur.execute(Q["delete_worker"], (owner,))

    def live_workers(self, seen_since: float) -> list[WorkerRecord]:
        with self._read() as cur:
            rows = cur.execute(Q["select_live_workers"], (seen_since,)).fetchall()
        return [worker_of(row) for row in rows]

    def forget_workers(self, seen_before: float) -> int:
        with self._write() as cur:
            cur.execute(Q["forget_workers"], (seen_before,))
            return cur.rowcount


class _Listener:
    """A thread holding one connection that ``LISTEN``s on the store's channel and hands
    each payload to ``wake``. After a lost connection it reconnects (at once, then every
    second, saying so once) and wakes with ``"*"`` (notifications sent meanwhile were
    missed: look at everything)."""

    def __init__(
        self, conninfo: str, settings: dict[str, Any], channel: str, wake: Callable[[str], None]
    ) -> None:
        self._conninfo = conninfo
        self._settings = {key: v for key, v in settings.items() if key != "options"}
        self._channel = channel
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        first = True
        failing = False  # since the last connection was lost: said so, retrying quietly
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._settings) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if not first:
                        self._wake("*")
                    first = failing = False
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._wake(note.payload)
            except psycopg.Error as exc:
                if not failing:
                    log.warning("lost the connection listening for wake-ups (%s); reconnecting",
                                str(exc).strip().split("\n")[0])  # fmt: skip
                    failing = True
                    continue  # at once: a cut connection is usually back at once
                self._stopped.wait(1.0)


def _scope(
    params: dict[str, Any], run_ids: Sequence[str] | None, queues: Sequence[str] | None
) -> str:
    """The SQL that restricts free attempts to some runs and queues (params filled in)."""
    where = ""
    if run_ids is not None:
        where += " AND r.run_id = ANY(%(runs)s)"
        params["runs"] = list(run_ids)
    if queues is not None:
        where += " AND r.queue = ANY(%(queues)s)"
        params["queues"] = list(queues)
    return where


class _PostgresFree:
    """The free attempts of one claim as ``choose`` sees them (see ``FreeQueue``)."""

    def __init__(
        self,
        cur: psycopg.Cursor[Any],
        now: float,
        limit: int,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
        lease_for: float,
    ) -> None:
        self.cur, self.now, self.limit = cur, now, limit
        self.run_ids, self.queues, self.lease_for = run_ids, queues, lease_for

    def look(self, full_limits: Sequence[str], full_rates: Sequence[str]) -> list[Candidate]:
        params: dict[str, Any] = {"now": self.now, "limit": self.limit}
        where = _FREE + _scope(params, self.run_ids, self.queues)
        for column, keys in (("limit_key", full_limits), ("rate_key", full_rates)):
            if keys:  # keys the claim filled itself, for its second look
                where += f" AND (r.{column} IS NULL OR NOT r.{column} = ANY(%({column}s)s))"
                params[f"{column}s"] = list(keys)
        query = f"{_SELECT_FREE} WHERE {where} {_FREE_ORDER}"
        return [Candidate(*row) for row in self.cur.execute(query.encode(), params)]

    def tripped(self, circuits: Sequence[str]) -> tuple[set[str], set[str]]:
        found = self.cur.execute(Q["select_tripped"], (list(circuits),)).fetchall()
        probed = {name for name, probe_until in found if (probe_until or 0) > self.now}
        return {name for name, _ in found} - probed, probed

    def start_probe(self, circuit: str) -> None:
        self.cur.execute(Q["start_probe"], (self.now + self.lease_for, self.now, circuit))

    def lock(self, name: str) -> None:
        self.cur.execute(Q["lock_key"], (name,))

    def holders(self, key: str) -> int:
        row = self.cur.execute(Q["count_limit_holders"], (key,)).fetchone()
        return int(row[0]) if row else 0

    def recent_starts(self, key: str, since: float) -> list[float]:
        self.cur.execute(Q["forget_rate_starts"], (key, since - RATE_SLACK))
        rows = self.cur.execute(Q["select_rate_starts"], (key, since)).fetchall()
        return [float(row[0]) for row in rows]

    def record_start(self, key: str) -> None:
        self.cur.execute(Q["insert_rate_start"], (key, self.now))

    def waiting_rates(self) -> list[tuple[str, int, float]]:
        params: dict[str, Any] = {"now": self.now}
        where = _scope(params, self.run_ids, self.queues)
        query = (
            "SELECT DISTINCT r.rate_key, r.rate_max, r.rate_per FROM ready r WHERE "
            "r.owner IS NULL AND NOT r.held AND r.rate_key IS NOT NULL AND "
            f"r.available_at <= %(now)s{where} ORDER BY r.rate_key"
        )
        rows = self.cur.execute(query.encode(), params).fetchall()
        return [(key, int(n), float(per)) for key, n, per in rows]
