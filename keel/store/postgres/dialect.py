"""PostgreSQL as the store skeleton's ``Dialect``: many writers at once, kept apart by
row locks, and woken by ``NOTIFY``.

- A transition locks its run's row first (``lock_runs``), so transitions of one run go
  one at a time and the hash chain is extended by one writer at a time, while other
  runs move in parallel. A group commit locks its runs in id order.
- A claim locks the runs of the attempts it looks at with ``SKIP LOCKED`` (in its
  ``free`` queries) and a reclaim takes only runs no transition holds
  (``lock_free_runs``), so neither waits for a transition (nor in a circle with one).
- Concurrency and rate limits are counted under a transaction-scoped advisory lock per
  key (``lock_key``), so two claims on two hosts never both take the last place; so are
  budgets (a run's, a workflow's day), so two calls never both get the last dollar.
- A sweep of blobs (``lock_blobs``) locks the blobs table against every writer that
  stores one: what it finds unnamed stays unnamed until it has deleted it.
- A deadlock or serialization failure (``retryable``) costs the claim or transition
  that lost it, not the whole call.
- What a write leaves for others is sent with ``pg_notify`` as it commits.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors

from keel.errors import StoreUnavailableError
from keel.store.limits import Candidate
from keel.store.postgres.connections import Connections
from keel.store.sql import load_queries
from keel.store.sqlstore.dialect import Cursor
from keel.store.wakeups import Wakeup, encode_all

T = TypeVar("T")
Q = load_queries("keel.store.postgres")


#: rows in one statement at most: a statement takes at most 65,535 parameters (a map of
#: 10,000 items queues them in one transition), and each row count is a query text kept
_MOST_ROWS = 256
_ONE_ROW = re.compile(r"VALUES\s*(\([^()]*\))")


@functools.cache
def _many_rows(name: str, count: int) -> str:
    """The single-row ``INSERT`` named ``name`` with ``count`` rows in its ``VALUES``."""
    query = Q[name]
    found = _ONE_ROW.search(query)
    if found is None:
        raise ValueError(f"query {name!r} has no single-row VALUES to repeat")
    rows = ", ".join([found.group(1)] * count)
    return f"{query[: found.start(1)]}{rows}{query[found.end(1) :]}"


class PostgresDialect:
    """The connections to one schema (``Connections``), and how the skeleton uses them."""

    queries = Q
    log = logging.getLogger("keel.store.postgres")
    retryable: tuple[type[Exception], ...] = (
        pg_errors.DeadlockDetected,
        pg_errors.SerializationFailure,
    )
    peeks = False
    notifies = True
    #: seconds a sweep of blobs waits for the table (``lock_blobs``)
    blob_lock_timeout = 5.0

    def __init__(self, connections: Connections, channel: str) -> None:
        self.db, self.channel = connections, channel

    def at_boundary(self, call: Callable[[], T]) -> T:
        """Run a public method, again after a lost connection (see ``connections``)."""
        return self.db.run(call)

    def read(self) -> AbstractContextManager[Cursor]:
        return self.db.read()

    def write(self) -> AbstractContextManager[Cursor]:
        return self.db.write()

    def savepoint(self, cur: Cursor) -> AbstractContextManager[object]:
        return cast(psycopg.Cursor[Any], cur).connection.transaction()

    def array(self, values: Sequence[Any]) -> list[Any]:
        return list(values)

    def param(self, name: str) -> str:
        return f"%({name})s"

    def insert(self, cur: Cursor, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement whatever the number of rows: each statement is a round trip
        (``executemany`` pipelines them, at a cost of its own per call)."""
        for start in range(0, len(rows), _MOST_ROWS):
            chunk = rows[start : start + _MOST_ROWS]
            if len(chunk) == 1:
                cur.execute(Q[name], chunk[0])
            else:
                cur.execute(_many_rows(name, len(chunk)), [v for row in chunk for v in row])

    def lock_runs(self, cur: Cursor, run_ids: Sequence[str]) -> None:
        """Also reads the transaction's id, which settles a ``COMMIT`` whose answer is
        lost (``Connections.write``): one round trip for both."""
        row = cur.execute(Q["lock_runs"], (list(run_ids),)).fetchone()
        if row is not None:
            self.db.note_xid(row[1])

    def lock_free_runs(self, cur: Cursor, run_ids: Sequence[str]) -> set[str]:
        return {row[0] for row in cur.execute(Q["lock_free_runs"], (list(run_ids),))}

    def take_leases(
        self, cur: Cursor, run_id: str, candidates: list[Candidate], owner: str, expires: float
    ) -> list[Candidate]:
        nodes, items = [c.node for c in candidates], [c.item for c in candidates]
        rows = cur.execute(Q["take_leases"], (owner, expires, run_id, nodes, items)).fetchall()
        still = {(node, item) for node, item in rows}
        return [c for c in candidates if (c.node, c.item) in still]

    def lock_key(self, cur: Cursor, name: str) -> None:
        cur.execute(Q["lock_key"], (name,))

    def lock_blobs(self, cur: Cursor) -> None:
        """``LOCK TABLE blobs IN SHARE ROW EXCLUSIVE MODE``: it conflicts with the
        ``ROW EXCLUSIVE`` lock every ``INSERT`` into blobs holds to its commit, one
        that found the blob there and did nothing included. While the sweep waits,
        every write storing a blob waits behind it: it gives up after
        ``blob_lock_timeout`` seconds rather than stall them behind a transaction that
        stays open."""
        cur.execute(Q["lock_timeout"], (f"{round(self.blob_lock_timeout * 1000)}ms",))
        try:
            cur.execute(Q["lock_blobs"])
        except pg_errors.LockNotAvailable:
            raise StoreUnavailableError(
                f"the sweep of blobs waited {self.blob_lock_timeout:g} s for transactions "
                "that stored a blob to commit, and gave up (one stays open: see "
                "pg_stat_activity); no blob was removed: prune again to remove them"
            ) from None

    def notify(self, cur: Cursor, notes: set[Wakeup]) -> None:
        for payload in encode_all(notes):
            cur.execute(Q["notify"], (self.channel, payload))

    def close(self) -> None:
        self.db.close()
