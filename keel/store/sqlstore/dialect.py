"""What a SQL backend supplies to the store skeleton: the small ``Dialect`` interface.

The skeleton (``keel.store.sqlstore``) holds every rule of the store once: how a
transition is applied, how a claim chooses, what a reclaim records. A dialect holds only
what differs between databases:

- its named queries (its ``queries.sql``, same names and parameter order in every
  dialect), how a list is passed to them (``array``) or a name written (``param``),
  and how several rows are inserted at once (``insert``);
- its transactions: ``read``, ``write``, and ``savepoint`` (a part of a write that can
  be undone alone, for one refused transition of a group commit);
- how concurrent writers are kept apart: which runs a transition locks (``lock_runs``),
  which a reclaim may take (``lock_free_runs``), which limit keys a claim counts and
  which budgets a call is checked against under a lock (``lock_key``), whether what a
  claim chose is still free (``take_leases``), and which errors mean "gave way to
  another transaction" (``retryable``);
- whether a claim looks read-only before taking the write lock (``peeks``);
- how other processes are woken when work is left for them (``notify``);
- how its driver's errors become keel's (``at_boundary``, see ``keel.store.boundary``).

A dialect's cursor is the database driver's own (``sqlite3.Connection`` or a psycopg
cursor): the skeleton only runs queries on it, through ``Cursor``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from keel.store.limits import Candidate
from keel.store.wakeups import Wakeup

T = TypeVar("T")


class Rows(Protocol):
    """What running a query gives back."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Cursor(Protocol):
    """Where the skeleton runs queries, inside a dialect's ``read`` or ``write``."""

    def execute(self, query: str, params: Any = ..., /) -> Rows: ...

    def executemany(self, query: str, rows: Iterable[Any], /) -> object: ...


class Dialect(Protocol):
    #: the dialect's named queries (``keel.store.sql.load_queries``)
    queries: dict[str, str]
    #: where the store says what it does (``keel.store.sqlite``, ``keel.store.postgres``)
    log: logging.Logger
    #: errors after which a transaction gave way to another one (a deadlock): the claim
    #: took nothing, the transition of a group commit is refused as a conflict
    retryable: tuple[type[Exception], ...]
    #: look for work read-only before taking the write lock (claims and notifications):
    #: worth it where a write lock holds the whole database
    peeks: bool
    #: whether ``notify`` wakes anyone (else the store does not work out wake-ups at all)
    notifies: bool

    def at_boundary(self, call: Callable[[], T]) -> T:
        """Run one public method of the store, mapping (and retrying) driver errors."""

    def read(self) -> AbstractContextManager[Cursor]:
        """Reads that need no write lock."""

    def write(self) -> AbstractContextManager[Cursor]:
        """One write transaction: committed when the block ends, rolled back if it raises."""

    def savepoint(self, cur: Cursor) -> AbstractContextManager[object]:
        """A part of the write that a raised error undoes alone (and re-raises)."""

    def array(self, values: Sequence[Any]) -> Any:
        """A list as the dialect's queries take it (an array, or JSON)."""

    def param(self, name: str) -> str:
        """The placeholder of the parameter ``name`` in hand-built SQL."""

    def insert(self, cur: Cursor, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` with the named single-row ``INSERT`` (its ``VALUES`` tuple
        holds one row), as cheaply as the database allows: a step inserts several."""

    def lock_runs(self, cur: Cursor, run_ids: Sequence[str]) -> None:
        """Hold these runs (sorted) until the write ends, waiting for other writers."""

    def lock_free_runs(self, cur: Cursor, run_ids: Sequence[str]) -> set[str]:
        """Hold those of these runs (sorted) that no other writer holds; which they are."""

    def take_leases(
        self, cur: Cursor, run_id: str, candidates: list[Candidate], owner: str, expires: float
    ) -> list[Candidate]:
        """Lease the chosen attempts of one run that are still free (one may have been
        taken between the claim's look and its lock); those it leased."""

    def lock_key(self, cur: Cursor, name: str) -> None:
        """Hold the lock ``name`` (a limit key's, a budget's) until the write ends."""

    def lock_blobs(self, cur: Cursor) -> None:
        """Hold the blobs table until the write ends: wait for every write that stored
        (or found) a blob to commit, and keep others from storing one meanwhile, so no
        reference to a blob appears between a sweep's mark and its deletes."""

    def notify(self, cur: Cursor, notes: set[Wakeup]) -> None:
        """Wake other processes when this write commits (see ``Store.listen``)."""

    def close(self) -> None:
        """Release every connection."""
