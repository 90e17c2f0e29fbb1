"""The embedded store: one SQLite file in WAL mode, one connection per thread.

Writes take the database lock up front (``BEGIN IMMEDIATE``) so two processes never
interleave a read-decide-write; a transition whose run moved on since the caller read
it is refused (``ConflictError``) rather than merged. ``synchronous`` is ``NORMAL`` by
default: with WAL, a committed transition survives the process crashing at any moment,
but the last commits before a power loss may be lost; ``FULL`` survives both and costs
a disk flush per commit (``sqlite:///path?synchronous=full``).

A writer waits for another process's lock up to ``timeout`` seconds (saying so once in
the log when it is long), then gives up with ``StoreUnavailableError``. Every public
method maps SQLite's errors (read-only, disk full, damaged file...) to a ``StoreError``
that names the file and what to do (``keel.store.sqlite.faults``). Opening a database
that needs no migration takes no write lock, so a read-only file can still be read.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from keel.engine.events import Event, NodeReclaimed, NodeStarted
from keel.errors import (
    ConflictError,
    LeaseLostError,
    RunNotFoundError,
    StoreError,
    StoreUnavailableError,
)
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
from keel.store.limits import RATE_SLACK, Admission, Candidate, choose, rate_free_at
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
from keel.store.sqlite.faults import is_busy, store_error
from keel.store.sqlite.files import create_private

Q = load_queries("keel.store.sqlite")
log = logging.getLogger("keel.store.sqlite")
#: seconds a writer waits for another process's lock before giving up (``?timeout=``)
DEFAULT_TIMEOUT = 30.0
#: seconds SQLite itself waits for a lock before the store looks again (and logs once)
_BUSY_SLICE = 5.0
#: how far a paused run's queued attempts are moved ahead (about 31,000 years): out of
#: reach of every claim, and brought back by subtracting it again (to within 0.1 ms: the
#: sum keeps fewer digits below the second, which no queue order depends on)
HOLD = 1e12
SYNCHRONOUS = ("off", "normal", "full", "extra")
T = TypeVar("T")
#: free attempts (see ``_candidates``)
_SELECT_FREE = (
    "SELECT run_id, node, item, attempt, queue, circuit, limit_key, limit_max, rate_key, "
    "rate_max, rate_per FROM ready"
)
_FREE = (
    "owner IS NULL AND available_at <= :now"
    " AND (circuit IS NULL OR circuit NOT IN (SELECT name FROM circuits"
    " WHERE open_until > :now OR probe_until > :now))"
    " AND (limit_key IS NULL OR (SELECT count(*) FROM ready h WHERE h.limit_key ="
    " ready.limit_key AND h.owner IS NOT NULL) < limit_max)"
    " AND (rate_key IS NULL OR (SELECT count(*) FROM rate_starts s WHERE s.key = ready.rate_key"
    " AND s.at > :now - ready.rate_per) < rate_max)"
)


def _scope(
    params: dict[str, Any], run_ids: Sequence[str] | None, queues: Sequence[str] | None
) -> str:
    """The SQL that restricts free attempts to some runs and queues (params filled in)."""
    where = ""
    if run_ids is not None and len(run_ids) == 1:
        where += " AND run_id = :run"
        params["run"] = run_ids[0]
    elif run_ids is not None:
        where += " AND run_id IN (SELECT value FROM json_each(:runs))"
        params["runs"] = json.dumps(list(run_ids))
    if queues is not None:
        where += " AND queue IN (SELECT value FROM json_each(:queues))"
        params["queues"] = json.dumps(list(queues))
    return where


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
class SQLiteStore:
    """``Store`` on a SQLite file. Safe to share between threads and processes."""

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
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._applied: list[str] = []
        if str(path) != ":memory:":
            create_private(self.path)
        try:
            self._at_boundary(self._migrate)
        except BaseException:
            self.close()
            raise

    # --- connections and transactions ---------------------------------------------------

    def _at_boundary(self, call: Callable[[], T]) -> T:
        """Run one public method; SQLite's errors leave it as ``StoreError``s."""
        try:
            return call()
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from None

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout={int(min(self.timeout, _BUSY_SLICE) * 1000)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. SQLite rolls some failed transactions back itself
        (a full disk): the rollback here must not hide the error that caused it."""
        conn = self._connection()
        self._begin(conn)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _begin(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, waiting up to ``timeout`` for another process to let go
        of it (saying once that it waits when it takes long)."""
        started = time.monotonic()
        said = False
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.timeout - _BUSY_SLICE / 2:
                    raise StoreUnavailableError(
                        f"{self.path} stayed locked by another process for {waited:.0f} s "
                        "(it holds a write transaction open): stop that process or wait "
                        "for it to finish, then try again"
                    ) from None
                if not said:
                    log.warning("%s is locked by another process; waiting up to %.0f s",
                                self.path, self.timeout)  # fmt: skip
                    said = True

    def _migrate(self) -> None:
        migrations = load_migrations("keel.store.sqlite.migrations")
        if not self._pending(migrations):
            return  # nothing to write: a read-only file can still be read
        with self._write() as conn:
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
        conn = self._connection()
        known = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if known is None:
            return True
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        return applied != {m.version for m in migrations}

    def migrations_applied(self) -> list[str]:
        return list(self._applied)

    def schema_version(self) -> int:
        row = self._connection().execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # --- specs ----------------------------------------------------------------------------

    def save_spec(self, spec: WorkflowSpec, at: float) -> None:
        with self._write() as conn:
            self._save_spec(conn, spec, at)

    def _save_spec(self, conn: sqlite3.Connection, spec: WorkflowSpec, at: float) -> None:
        conn.execute(Q["insert_spec"], (spec.version, spec.name, spec.model_dump_json(), at))

    def load_spec(self, version: str) -> WorkflowSpec:
        row = self._connection().execute(Q["select_spec"], (version,)).fetchone()
        if row is None:
            raise StoreError(f"no workflow definition with version {version} is stored")
        spec: WorkflowSpec = spec_from_row(version, row[0])
        return spec

    # --- appending events -------------------------------------------------------------------

    def _append(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        events: Sequence[Event],
        at: float,
        expected_seq: int | None = None,
        expected_head: str | None = None,
    ) -> list[StoredEvent]:
        head = conn.execute(Q["select_head"], (run_id,)).fetchone()
        appended = link_events(run_id, head, events, at, expected_seq, expected_head)
        if appended.rows:
            conn.executemany(Q["insert_event"], appended.rows)
            conn.execute(
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
        with self._write() as conn:
            self._insert_run(conn, spec, run_input, first, origin)
            return self._transition(conn, first)

    def _insert_run(
        self,
        conn: sqlite3.Connection,
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        origin: str | None,
        parent: tuple[str, str] | None = None,
    ) -> None:
        self._save_spec(conn, spec, first.at)
        parent_run, parent_node = parent or (None, None)
        try:
            conn.execute(
                Q["insert_run"],
                (first.run_id, spec.name, spec.version, "pending", canonical_json(run_input),
                 origin, first.at, first.at, GENESIS, parent_run, parent_node),
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise StoreError(f"a run with id {first.run_id} exists already") from None

    def _enqueue(self, conn: sqlite3.Connection, run_id: str, ready: Sequence[Ready]) -> None:
        if ready:
            conn.executemany(Q["insert_ready"], [ready_row(run_id, r) for r in ready])

    # --- transitions -------------------------------------------------------------------------

    def commit(self, transitions: Sequence[Transition]) -> list[Committed]:
        refusals = (ConflictError, LeaseLostError, RunNotFoundError)
        if len(transitions) == 1:  # the whole transaction is this one transition
            try:
                with self._write() as conn:
                    return [self._transition(conn, transitions[0])]
            except refusals as exc:
                return [Committed(transitions[0], error=exc)]
        results: list[Committed] = []
        order = BatchOrder()
        with self._write() as conn:
            for transition in transitions:
                # a refused transition must leave nothing behind, not even the leases it
                # released before the refusal was found
                conn.execute("SAVEPOINT transition")
                try:
                    order.admit(transition)
                    committed = self._transition(conn, transition)
                except refusals as exc:
                    conn.execute("ROLLBACK TO transition")
                    order.refused(transition)
                    results.append(Committed(transition, error=exc))
                else:
                    results.append(committed)
                conn.execute("RELEASE transition")
        return results

    def _transition(self, conn: sqlite3.Connection, t: Transition) -> Committed:
        # the lease check comes first, so a refused transition has written nothing
        for lease in t.done:
            deleted = conn.execute(
                Q["delete_held"],
                (lease.run_id, lease.node, item_column(lease.item), lease.attempt, lease.owner),
            ).rowcount
            if deleted != 1:
                raise LeaseLostError(
                    f"run {lease.run_id}: {lease.node} attempt {lease.attempt} is no longer "
                    f"held by {lease.owner}"
                )
        for node, item in t.withdraw:
            conn.execute(Q["delete_queued"], (t.run_id, node, item_column(item)))
        # counted before anything is leased: the failure that opens a circuit must not
        # hand out the next attempt that needs it
        for outcome in t.circuits:
            if outcome.ok:
                conn.execute(Q["circuit_succeeded"], (outcome.name,))
            else:
                conn.execute(
                    Q["circuit_failed"],
                    {"name": outcome.name, "threshold": outcome.failures,
                     "cooldown": outcome.cooldown, "at": t.at},
                )  # fmt: skip
        # an attempt that needs a circuit goes through the queue, where the circuit is
        # checked, rather than straight to the worker
        leased = leasable_now(t)
        queued: list[Candidate] = []
        if t.lease_to is not None and len(leased) < t.lease_limit:
            queued = self._free(
                conn, t.at, t.lease_limit - len(leased), [t.run_id], t.lease_queues, t.lease_for
            ).taken
        if t.lease_to is None or not (leased or queued):
            stored = self._append(conn, t.run_id, t.events, t.at, t.expected_seq, t.expected_head)
            self._enqueue(conn, t.run_id, t.enqueue)
            claimed: list[Claimed] = []
        else:
            stored, claimed = self._enqueue_leased(conn, t, leased, queued)
        for timer in t.timers:  # a timer may be for another run (a child's end, its parent)
            conn.execute(
                Q["upsert_timer"],
                {"run": timer.run_id, "key": timer.key, "due": timer.due_at,
                 "data": canonical_json(timer.data)},
            )  # fmt: skip
        for key in t.clear_timers:
            conn.execute(Q["delete_timer"], (t.run_id, key))
        self._waits(conn, t)
        for note in t.notify:
            conn.execute(
                Q["insert_outbox"],
                (t.run_id, canonical_json(note.notifier), canonical_json(note.payload), t.at, t.at),
            )
        if t.status is not None:
            output = None if t.output is None else canonical_json(t.output)
            conn.execute(Q["update_status"], (t.status, output, t.reason, t.run_id))
            if t.status in ("succeeded", "failed", "cancelled"):
                conn.execute(Q["delete_run_ready"], (t.run_id,))
                conn.execute(Q["delete_run_timers"], (t.run_id,))
                conn.execute(Q["delete_run_waits"], (t.run_id,))
        return Committed(t, stored, claimed=claimed)

    def _waits(self, conn: sqlite3.Connection, t: Transition) -> None:
        """Waiting nodes listed and unlisted, child runs created, a pause's hold."""
        for wait in t.waits:
            conn.execute(
                Q["upsert_wait"],
                (t.run_id, wait.node, wait.waits_for, wait.since, wait.until,
                 canonical_json(wait.details)),
            )  # fmt: skip
        for node in t.clear_waits:
            conn.execute(Q["delete_wait"], (t.run_id, node))
        if t.children:
            (origin,) = conn.execute(Q["select_origin"], (t.run_id,)).fetchone()
            for child in t.children:
                try:
                    self._insert_run(conn, child.spec, child.input, child.first, origin,
                                     (child.parent_run, child.parent_node))  # fmt: skip
                except StoreError:  # another process started this child: the parent moved
                    raise ConflictError(
                        f"child run {child.first.run_id} of run {t.run_id} exists already"
                    ) from None
                self._transition(conn, child.first)
        if t.hold is not None:
            query = "hold_ready" if t.hold else "release_ready"
            conn.execute(Q[query], {"run": t.run_id, "hold": HOLD})

    def _enqueue_leased(
        self,
        conn: sqlite3.Connection,
        t: Transition,
        leased: list[Ready],
        queued: list[Candidate],
    ) -> tuple[list[StoredEvent], list[Claimed]]:
        """Append the transition's events and the ``NodeStarted`` of the attempts it
        leases in one go: new ones, queued already held, and ``queued`` ones taken."""
        assert t.lease_to is not None
        owner, expires = t.lease_to, t.at + t.lease_for
        started = started_events(t, leased, queued)
        stored = self._append(
            conn,
            t.run_id,
            [*t.events, *started],
            t.at,
            t.expected_seq,
            t.expected_head,
        )
        conn.executemany(
            Q["insert_ready"], [ready_row(t.run_id, r, owner, expires) for r in leased]
        )
        conn.executemany(
            Q["take_lease"], [(owner, expires, t.run_id, c.node, c.item) for c in queued]
        )
        chosen = {id(r) for r in leased}
        self._enqueue(conn, t.run_id, [r for r in t.enqueue if id(r) not in chosen])
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
        # look before taking the write lock: most polls find nothing, and a read in WAL
        # mode neither waits for writers nor makes them wait
        peek = self._connection()
        if not self._candidates(peek, now, 1, run_ids, queues):
            # held back by rate limits only? say when to look again
            for key, rate_max, per in self._waiting_rates(peek, now, run_ids, queues):
                starts = [at for (at,) in peek.execute(Q["select_rate_starts"], (key, now - per))]
                free_at = rate_free_at(starts, rate_max, per)
                if free_at is not None and (claimed.retry_at is None or free_at < claimed.retry_at):
                    claimed.retry_at = free_at
            return claimed
        with self._write() as conn:
            admission = self._free(conn, now, limit, run_ids, queues, lease_for, want_retry=True)
            claimed.retry_at = admission.retry_at
            for c in admission.taken:
                conn.execute(Q["take_lease"], (owner, expires, c.run_id, c.node, c.item))
                started = NodeStarted(node=c.node, attempt=c.attempt, worker=owner,
                                      item=item_of(c.item))  # fmt: skip
                (event,) = self._append(conn, c.run_id, [started], now)
                lease = Lease(c.run_id, c.node, item_of(c.item), c.attempt, owner, expires)
                claimed.append(Claimed(lease, event))
        return claimed

    @staticmethod
    def _candidates(
        conn: sqlite3.Connection,
        now: float,
        limit: int,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
        full_limits: Sequence[str] = (),
        full_rates: Sequence[str] = (),
    ) -> list[Candidate]:
        """Free attempts, best first, filtered in SQL (never after a LIMIT): due, their
        circuit closed (or past its cool-down, for the probe), their keys not full."""
        params: dict[str, Any] = {"now": now, "limit": limit}
        where = _FREE + _scope(params, run_ids, queues)
        for column, keys in (("limit_key", full_limits), ("rate_key", full_rates)):
            if keys:  # keys the claim filled itself, for its second look
                where += (f" AND ({column} IS NULL OR {column} NOT IN "
                          f"(SELECT value FROM json_each(:{column}s)))")  # fmt: skip
                params[f"{column}s"] = json.dumps(list(keys))
        query = f"{_SELECT_FREE} WHERE {where} ORDER BY priority DESC, available_at LIMIT :limit"
        return [Candidate(*row) for row in conn.execute(query, params)]

    def _free(
        self,
        conn: sqlite3.Connection,
        now: float,
        limit: int,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
        lease_for: float,
        *,
        want_retry: bool = False,
    ) -> Admission:
        """Free attempts to take inside a write transaction, which serialises claims
        (so nothing counted here changes before the commit); see ``choose``."""
        free = _SQLiteFree(self, conn, now, limit, run_ids, queues, lease_for)
        return choose(free, now, limit, want_retry=want_retry)

    @staticmethod
    def _waiting_rates(
        conn: sqlite3.Connection,
        now: float,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
    ) -> list[tuple[str, int, float]]:
        """(key, max, per) of the rate keys free attempts in scope wait for."""
        params: dict[str, Any] = {"now": now}
        where = _scope(params, run_ids, queues)
        query = (
            "SELECT DISTINCT rate_key, rate_max, rate_per FROM ready WHERE owner IS NULL "
            f"AND rate_key IS NOT NULL AND available_at <= :now{where} ORDER BY rate_key"
        )
        return [(str(key), int(n), float(per)) for key, n, per in conn.execute(query, params)]

    def renew(self, owner: str, now: float, lease_for: float) -> int:
        with self._write() as conn:
            # a probe holds its circuit half-open for as long as its lease lives
            conn.execute(Q["renew_probes"], {"until": now + lease_for, "now": now, "owner": owner})
            return conn.execute(Q["renew_leases"], (now + lease_for, owner)).rowcount

    def lease_owners(self) -> list[str]:
        return [row[0] for row in self._connection().execute(Q["select_owners"])]

    def reclaim(
        self, now: float, *, dead_owners: Sequence[str] = (), reason: str = ""
    ) -> list[StoredEvent]:
        reclaimed: list[StoredEvent] = []
        with self._write() as conn:
            rows = [(*row, "lease expired") for row in conn.execute(Q["select_lost"], (now,))]
            for owner in dead_owners:
                rows += [(*row, reason or "owner died")
                         for row in conn.execute(Q["select_held_by"], (owner,))]  # fmt: skip
            seen: set[tuple[str, str, int]] = set()
            for run_id, node, item, attempt, owner, why in rows:
                if (run_id, node, item) in seen:
                    continue
                seen.add((run_id, node, item))
                conn.execute(
                    Q["drop_lease"],
                    {"run": run_id, "node": node, "item": item, "owner": owner, "hold": HOLD},
                )
                event = NodeReclaimed(node=node, attempt=attempt, owner=owner, reason=why,
                                      item=item_of(item))  # fmt: skip
                reclaimed += self._append(conn, run_id, [event], now)
        return reclaimed

    def leases(self, run_id: str) -> list[Lease]:
        rows = self._connection().execute(Q["select_leases_of_run"], (run_id,))
        return [
            Lease(run, node, item_of(item), attempt, owner, expires)
            for run, node, item, attempt, owner, expires in rows
        ]

    def ready_count(self, run_id: str) -> int:
        return int(self._connection().execute(Q["count_ready_of_run"], (run_id,)).fetchone()[0])

    # --- reading runs -------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        conn = self._connection()
        row = conn.execute(Q["select_run"], (run_id,)).fetchone()
        if row is None and run_id:
            matches = conn.execute(Q["select_run_prefix"], (run_id, run_id + "\uffff")).fetchall()
            if len(matches) > 1:
                raise RunNotFoundError(f"'{run_id}' matches several runs: give more characters")
            if matches:
                row = conn.execute(Q["select_run"], (matches[0][0],)).fetchone()
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
        if parent is not None:
            where.append("parent_run = ?")
            params.append(parent)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        base = re.split(r"\s+FROM runs", Q["select_run"])[0]
        query = f"{base} FROM runs {clause} ORDER BY created_at DESC, id LIMIT ?"
        rows = self._connection().execute(query, (*params, limit))
        return [run_record(row) for row in rows]

    def history(self, run_id: str, after_seq: int = 0) -> list[StoredEvent]:
        rows = self._connection().execute(Q["select_history"], (run_id, after_seq))
        return [stored_event_of(row) for row in rows]

    def chain_links(self, run_id: str) -> list[ChainLink]:
        """The stored events exactly as written, for ``verify_chain``."""
        rows = self._connection().execute(Q["select_chain"], (run_id,))
        return [ChainLink(*row) for row in rows]

    # --- the outbox of notifications -------------------------------------------------------

    def take_notifications(
        self, owner: str, now: float, limit: int, lease_for: float
    ) -> list[OutboxItem]:
        if (
            not self._connection()
            .execute(Q["select_due_outbox"], {"now": now, "limit": 1})
            .fetchone()
        ):
            return []  # looked without the write lock: usually there is nothing to send
        with self._write() as conn:
            ids = [
                row[0] for row in conn.execute(Q["select_due_outbox"], {"now": now, "limit": limit})
            ]
            taken = [
                conn.execute(Q["take_outbox"], (owner, now + lease_for, i)).fetchone() for i in ids
            ]
        return [
            OutboxItem(row_id, run_id, json.loads(notifier), json.loads(payload), deliveries)
            for row_id, run_id, notifier, payload, deliveries in taken
        ]

    def finish_notification(
        self, item_id: int, now: float, *, error: str | None = None, retry_at: float | None = None
    ) -> None:
        with self._write() as conn:
            if error is None:
                conn.execute(Q["outbox_delivered"], (now, item_id))
            else:
                conn.execute(Q["outbox_failed"], (retry_at, error, item_id))

    def notifications(self, run_id: str) -> list[OutboxItem]:
        rows = self._connection().execute(Q["select_outbox_of_run"], (run_id,))
        return [outbox_item_of(row) for row in rows]

    def circuits(self) -> list[CircuitState]:
        rows = self._connection().execute(Q["select_circuits"])
        return [CircuitState(*row) for row in rows]

    def waits(
        self, *, waits_for: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[Wait]:
        rows = self._connection().execute(
            Q["select_waits"], {"kind": waits_for, "run": run_id, "limit": limit}
        )
        return [wait_of(row) for row in rows]

    def due_timers(self, now: float, limit: int) -> list[Timer]:
        rows = self._connection().execute(Q["select_due_timers"], (now, limit))
        return [timer_of(row) for row in rows]

    def next_timer_at(self) -> float | None:
        (due,) = self._connection().execute(Q["select_next_timer"]).fetchone()
        return None if due is None else float(due)

    def database_time(self) -> float | None:
        """None: every process using the file is on this host and shares its clock."""
        return None

    def listen(self, wake: Callable[[str], None]) -> Callable[[], None] | None:
        """None: SQLite has no notifications (workers on one host poll, cheaply)."""
        return None

    # --- live workers (see keel.store.presence) -------------------------------------------
    # A table of their own, written only by workers: nothing else in the store reads it.

    def register_worker(self, worker: WorkerRecord) -> None:
        with self._write() as conn:
            conn.execute(Q["upsert_worker"], worker_row(worker))

    def worker_seen(self, owner: str, at: float) -> bool:
        with self._write() as conn:
            return conn.execute(Q["worker_seen"], (at, owner)).rowcount == 1

    def unregister_worker(self, owner: str) -> None:
        with self._write() as conn:
            conn.execute(Q["delete_worker"], (owner,))

    def live_workers(self, seen_since: float) -> list[WorkerRecord]:
        rows = self._connection().execute(Q["select_live_workers"], (seen_since,))
        return [worker_of(row) for row in rows]

    def forget_workers(self, seen_before: float) -> int:
        with self._write() as conn:
            return conn.execute(Q["forget_workers"], (seen_before,)).rowcount


class _SQLiteFree:
    """The free attempts of one claim as ``choose`` sees them (see ``FreeQueue``)."""

    def __init__(
        self,
        store: SQLiteStore,
        conn: sqlite3.Connection,
        now: float,
        limit: int,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
        lease_for: float,
    ) -> None:
        self.store, self.conn, self.now, self.limit = store, conn, now, limit
        self.run_ids, self.queues, self.lease_for = run_ids, queues, lease_for

    def look(self, full_limits: Sequence[str], full_rates: Sequence[str]) -> list[Candidate]:
        return self.store._candidates(
            self.conn, self.now, self.limit, self.run_ids, self.queues, full_limits, full_rates
        )

    def tripped(self, circuits: Sequence[str]) -> tuple[set[str], set[str]]:
        found = self.conn.execute(Q["select_tripped"], (json.dumps(list(circuits)),))
        return {name for (name,) in found}, set()  # one writer at a time: none probed since

    def start_probe(self, circuit: str) -> None:
        self.conn.execute(Q["start_probe"], (self.now + self.lease_for, self.now, circuit))

    def lock(self, name: str) -> None:
        """The write transaction holds the whole database already."""

    def holders(self, key: str) -> int:
        return int(self.conn.execute(Q["count_limit_holders"], (key,)).fetchone()[0])

    def recent_starts(self, key: str, since: float) -> list[float]:
        self.conn.execute(Q["forget_rate_starts"], (key, since - RATE_SLACK))
        return [row[0] for row in self.conn.execute(Q["select_rate_starts"], (key, since))]

    def record_start(self, key: str) -> None:
        self.conn.execute(Q["insert_rate_start"], (key, self.now))

    def waiting_rates(self) -> list[tuple[str, int, float]]:
        return self.store._waiting_rates(self.conn, self.now, self.run_ids, self.queues)
